"""Committed generated data is what the current code generates: the golden headers
and the sample's demo images (`python tools/golden.py`) and the host plan
fixtures (tests/host/gen_plan_fixtures.py), each regenerated into a temporary
folder and compared byte for byte; and the demo images are loaded and trained on
through the runtime binding, as the native_sim sample does."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

import golden
from micropeft.deploy import pack
from micropeft.host import runtime
from micropeft.prep import convert, datasets, tflite_graph

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "samples" / "peft_mobilenet" / "data"


_FLOAT = re.compile(r"-?\d+\.\d*(?:e[+-]?\d+)?f?|-?\d+e[+-]?\d+f?")
_INT = re.compile(r"-?\d+")
# TensorFlow's float32 results (the demo model's 15 epochs of training, the kernels'
# expected outputs) differ in their last bits from one CPU to another, and with them a
# few int8 weights and checksums of the blobs: regenerated on another machine, a file
# keeps its structure and its text, and only that noise may differ. Whether the committed
# blobs still match the formats is checked by loading them (the test below).
_NOISE_FRACTION = 0.03


def _only_float_noise(new: bytes, old: bytes, name: str) -> bool:
    if new == old:
        return True
    if not name.endswith(".h"):
        if len(new) != len(old):
            return False
        return sum(a != b for a, b in zip(new, old, strict=True)) <= _NOISE_FRACTION * len(new)
    new_text, old_text = new.decode(), old.decode()
    if _INT.sub("#", _FLOAT.sub("#", new_text)) != _INT.sub("#", _FLOAT.sub("#", old_text)):
        return False  # other text, other array lengths: a format or layout change
    new_f = np.array([float(v.rstrip("f")) for v in _FLOAT.findall(new_text)])
    old_f = np.array([float(v.rstrip("f")) for v in _FLOAT.findall(old_text)])
    if not np.allclose(new_f, old_f, rtol=1e-4, atol=1e-6):
        return False
    new_i = _INT.findall(_FLOAT.sub("#", new_text))
    old_i = _INT.findall(_FLOAT.sub("#", old_text))
    differ = sum(a != b for a, b in zip(new_i, old_i, strict=True))  # same skeleton: same count
    return differ <= _NOISE_FRACTION * max(1, len(new_i))


def test_golden_headers_and_demo_images_are_current(tmp_path):
    (tmp_path / "tests").mkdir()
    written = golden.write_all(tmp_path, golden.DEFAULT_SEED)
    assert len(written) == 6
    stale = [
        str(path.relative_to(tmp_path))
        for path in written
        if not _only_float_noise(
            path.read_bytes(), (REPO / path.relative_to(tmp_path)).read_bytes(), path.name
        )
    ]
    assert not stale, f"stale generated files (run python tools/golden.py): {stale}"


def test_float_noise_is_told_from_a_stale_file():
    header = b"const float w[3] = {1.2345678e-01f, -2.0e+00f, 3.5f};\n"
    header += b"const uint8_t b[2] = {7, 9};\n"
    noisy = header.replace(b"1.2345678e-01f", b"1.2345679e-01f")
    assert _only_float_noise(noisy, header, "g.h")
    assert not _only_float_noise(header.replace(b"3.5f", b"3.6f"), header, "g.h")
    assert not _only_float_noise(header.replace(b"{7, 9}", b"{7, 9, 1}"), header, "g.h")
    assert not _only_float_noise(header.replace(b"uint8_t b", b"int8_t b"), header, "g.h")
    blob = bytes(range(200))
    assert _only_float_noise(blob[:-1] + b"\x00", blob, "d.bin")
    assert not _only_float_noise(blob + b"\x00", blob, "d.bin")
    assert not _only_float_noise(bytes(200), blob, "d.bin")


def test_host_plan_fixtures_are_current():
    sys.path.insert(0, str(REPO / "tests" / "host"))
    try:
        import gen_plan_fixtures
    finally:
        sys.path.pop(0)
    committed = (REPO / "tests" / "host" / "peft_plan_fixtures.h").read_text()
    assert gen_plan_fixtures.render() == committed, "run python tests/host/gen_plan_fixtures.py"


def test_demo_images_load_and_train_in_the_runtime():
    model, plan_blob = pack.parse_model_container((DEMO / "demo_model.bin").read_bytes())
    data = datasets.parse_dataset_blob((DEMO / "demo_dataset.bin").read_bytes())
    # the device's checks: the dataset fits the model input and the plan's classes
    info = tflite_graph.input_info(model)
    assert data.x_train.shape[1:] == info.shape
    assert data.quant == info.quant
    trainer = runtime.Trainer(model, plan_blob)
    assert trainer.num_classes == data.num_classes
    # TFLM runs the frozen prefix (the device model stops at the split tensor)
    split_train = convert.run_tflm(model, data.x_train).outputs
    split_test = convert.run_tflm(model, data.x_test).outputs

    def accuracy(samples: np.ndarray, labels: np.ndarray) -> float:
        hits = [trainer.predict(x)[1] == y for x, y in zip(samples, labels, strict=True)]
        return float(np.mean(hits))

    # the sample's defaults: 5 epochs, a step every 8 samples
    epoch_loss = []
    for _ in range(5):
        losses = []
        for i, (x, y) in enumerate(zip(split_train, data.y_train, strict=True)):
            losses.append(trainer.train_sample(x, int(y)))
            if i % 8 == 7:
                trainer.step()
        trainer.step()
        epoch_loss.append(float(np.mean(losses)))
    assert all(np.isfinite(epoch_loss))
    # the head starts untrained (accuracy near chance, 1 / 5 classes); after the sample's
    # five epochs it has learned the new digits (measured: loss 1.88 -> 1.17, train
    # 0.59, test 0.53)
    assert epoch_loss[-1] < 0.7 * epoch_loss[0], epoch_loss
    assert accuracy(split_train, data.y_train) >= 0.5
    assert accuracy(split_test, data.y_test) >= 2.0 / data.num_classes
    # the trained state survives an export/import round trip, as the sample's slots do
    state = trainer.export_state(epoch=4, sequence=1)
    fresh = runtime.Trainer(model, plan_blob, mode="infer")
    assert fresh.import_state(state) == {"epoch": 4, "sequence": 1}
    for x in split_test[:8]:
        np.testing.assert_allclose(fresh.predict(x)[0], trainer.predict(x)[0], rtol=1e-6)
