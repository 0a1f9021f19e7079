"""micropeft.eval.host_speed: its command line and the shape of its figures.

No figure is asserted (speed is shown by the script, not by timed tests): the
test checks the bad-input errors, that a method times both runtimes at the
batches it applies to, and the table's geometric mean against a hand-computed one.
"""

from __future__ import annotations

import math

import pytest

from micropeft.eval import host_speed, tasks


def test_unknown_method_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        host_speed.main(["--methods", "no_such_method"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("host_speed: unknown method 'no_such_method'")
    assert "\n" not in err


def test_zero_repeats_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        host_speed.main(["--methods", "last_layer", "--repeats", "0"])
    assert exit_info.value.code == 2
    assert "--repeats" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["last_layer", "lora_r4_lean"])
def test_a_method_times_c_and_tf_where_its_batch_applies(name, tmp_path):
    model = host_speed.kernel_bench.random_mobilenet(tmp_path)
    graph = host_speed.graph_from_tflite(model)
    row = host_speed.method_speed(name, model, graph, repeats=1)
    per_layer = tasks.METHODS[name].update == "layer"
    for batch in host_speed.BATCHES:
        c_ms, tf_ms, ratio = (row[f"{k}_b{batch}"] for k in ("c_ms", "tf_ms", "tf_over_c"))
        if batch > 1 and per_layer:
            assert c_ms is None and tf_ms is None and ratio is None
            continue
        assert isinstance(c_ms, float) and c_ms > 0
        assert isinstance(tf_ms, float) and tf_ms > 0
        assert ratio == pytest.approx(tf_ms / c_ms)


def test_table_prints_the_geometric_mean(capsys):
    rows = [
        {"method": "a", "c_ms_b16": 1.0, "tf_ms_b16": 2.0, "tf_over_c_b16": 2.0,
         "c_ms_b1": 1.0, "tf_ms_b1": 8.0, "tf_over_c_b1": 8.0},
        {"method": "b", "c_ms_b16": None, "tf_ms_b16": None, "tf_over_c_b16": None,
         "c_ms_b1": 1.0, "tf_ms_b1": 2.0, "tf_over_c_b1": 2.0},
    ]  # fmt: skip
    host_speed.print_table(rows)
    out = capsys.readouterr().out
    assert "batch 16: TF/C geometric mean 2.0, lowest 2.0, highest 2.0 (1 methods)" in out
    assert f"batch  1: TF/C geometric mean {math.sqrt(16):.1f}" in out
