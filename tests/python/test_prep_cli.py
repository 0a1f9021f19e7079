"""The preparation chain through the command line, as a user runs it.

prepare-model (a tiny CNN pretrained one epoch on Animal-MNIST) ->
prepare-dataset -> pack, then: the C runtime accepts the plan with the device
model (runtime.Trainer), TFLM runs the device model, the packed flash holds
the files; and bad input gives exit status 2 with one line on stderr."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from intelhex import IntelHex

from micropeft import formats
from micropeft.deploy import pack
from micropeft.host import runtime
from micropeft.prep import convert, datasets, tflite_graph

REG = re.compile(r"(\w+): partition@[0-9a-f]+ \{[^}]*reg = <(0x[0-9a-f]+) (0x[0-9a-f]+)>;")


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "micropeft", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    env = dict(os.environ, MICROPEFT_CACHE=str(root / "cache"))
    model = _cli(
        "prepare-model", "--arch", "tiny_cnn", "--size", "16", "--pretrain-epochs", "1",
        "--method", "lora,bitfit", "--r", "2", "--act-cache", "s8", "--int8-backward",
        "--out", root / "m", env=env,
    )  # fmt: skip
    assert model.returncode == 0, model.stderr
    data = _cli(
        "prepare-dataset", "--model", root / "m" / "model.tflite", "--source", "digits",
        "--limit", "100", "--out", root / "d",
    )  # fmt: skip
    assert data.returncode == 0, data.stderr
    packed = {}
    for board in ("nrf52840dk", "native_sim"):
        done = _cli(
            "pack", "--board", board, "--model-dir", root / "m", "--dataset",
            root / "d" / "dataset.bin", "--out", root / board,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        packed[board] = root / board
    return {"root": root, "env": env, "model_out": model.stdout, "packed": packed}


def test_prepare_model_writes_table_and_files(chain):
    out = chain["root"] / "m"
    text = chain["model_out"]
    for needle in ("TFLM arena, frozen prefix", "training arena total", "trainable parameters"):
        assert needle in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_classes"] == 10 and summary["input_shape"] == [16, 16, 1]
    assert summary["tflm_check_max_abs_diff"] <= 1
    assert summary["trainable_parameters"] > 0 and summary["ram"]["tflm_arena_prefix"] > 0
    full = (out / "full.tflite").read_bytes()
    device = (out / "model.tflite").read_bytes()
    assert len(full) == len(device) and full != device
    assert summary["flash"]["model"] == len(device)
    assert summary["pretrain"]["dataset"] == "animal-mnist"
    # Total device RAM: the sample's TFLM arena, training arena, the buffer the state
    # streams through (the sample's fixed size, not the state's), prefix cache (none
    # asked for); the split activation is read in TFLM's output tensor (no buffer).
    ram = summary["ram"]
    assert summary["flash"]["state_slot"] > formats.LIMIT["STATE_STREAM_BUFFER"]
    assert ram["device"]["split_buffer"] == 0
    assert ram["total_device"] == (
        ram["tflm_arena_prefix"] + ram["train_arena"] + formats.LIMIT["STATE_STREAM_BUFFER"] + 0
    )  # fmt: skip
    assert "TOTAL DEVICE RAM" in text
    # --int8-backward: BitFit trains the stem's bias, so the frozen 1x1 conv and the head
    # (LoRA trains only their adapters) pass their input gradients through the int8 path.
    assert len(summary["int8_backward"]["layers"]) == 2
    assert "needs CONFIG_PEFT_INT8_BACKWARD=y" in text
    flags = formats.PLAN_HEADER.read((out / "plan.bin").read_bytes(), "flags")
    assert flags == int(formats.PlanFlag.INT8_BACKWARD)


def test_device_model_output_is_the_split_tensor(chain):
    out = chain["root"] / "m"
    full = (out / "full.tflite").read_bytes()
    device = (out / "model.tflite").read_bytes()
    summary = json.loads((out / "summary.json").read_text())
    graph = tflite_graph.graph_from_tflite(full)
    split_index = [t.name for t in graph.tensors].index(summary["split_tensor"])
    x = np.random.default_rng(0).integers(-128, 128, (2, 16, 16, 1)).astype(np.int8)
    got = convert.run_tflm(device, x).outputs
    interp = convert.tflite_interpreter(full, preserve_all_tensors=True)
    tensor = graph.extra["tflite_tensor_index"][split_index]
    for sample, out_tflm in zip(x, got, strict=True):
        interp.set_tensor(interp.get_input_details()[0]["index"], sample[None])
        interp.invoke()
        np.testing.assert_array_equal(out_tflm, interp.get_tensor(tensor)[0])


def test_plan_parses_in_the_c_runtime(chain):
    out = chain["root"] / "m"
    device = (out / "model.tflite").read_bytes()
    plan = (out / "plan.bin").read_bytes()
    summary = json.loads((out / "summary.json").read_text())
    trainer = runtime.Trainer(device, plan)
    assert trainer.plan.arena_size("train") == summary["ram"]["train_arena"]
    assert trainer.plan.arena_size("infer") == summary["ram"]["infer_arena"]
    assert trainer.plan.trainable_params() == summary["trainable_parameters"]
    assert trainer.num_classes == summary["num_classes"]
    assert len(trainer.export_state()) == summary["flash"]["state_slot"]


@pytest.mark.parametrize("method", ["dora", "ia3", "ia3_feedforward"])
def test_prepare_model_plans_dora_and_ia3_for_the_c_runtime(chain, tmp_path, method):
    """Each new method from a YAML file (dora; HF's IA3Config with feedforward_modules) or
    flags (ia3), accepted by the C runtime, its parameters those the method names (tiny
    CNN: conv, depthwise, pointwise, dense)."""
    full = chain["root"] / "m" / "full.tflite"
    out = tmp_path / method
    if method == "dora":
        recipe = tmp_path / "dora.yaml"
        recipe.write_text(
            "method: [dora, last_layer]\nr: 2\nlora_alpha: 4\ntarget_modules: {dora: [pointwise]}\n"
        )
        args = ["--config", recipe]
    elif method == "ia3_feedforward":
        recipe = tmp_path / "ia3.yaml"
        recipe.write_text(
            "peft_type: IA3\ntarget_modules: [all]\nfeedforward_modules: [pointwise, fc]\n"
        )
        args = ["--config", recipe]
    else:
        args = ["--method", "ia3,last_layer"]
    done = _cli("prepare-model", "--tflite", full, *args, "--out", out)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    trainer = runtime.Trainer((out / "model.tflite").read_bytes(), (out / "plan.bin").read_bytes())
    assert trainer.plan.trainable_params() == summary["trainable_parameters"]
    kinds = {}
    for info in trainer.param_infos():
        kinds.setdefault(formats.PARAM_KINDS[info.kind], []).append(info.count)
    if method == "dora":  # the pointwise conv: m per output channel, A and B of rank 2
        (m_count,) = kinds["dora_m"]
        assert kinds["lora_b"] == [2 * m_count]
        assert [e["methods"] for e in summary["trainable_layers"]] == ["dora r=2", "last_layer"]
    elif method == "ia3_feedforward":  # output IA3 on the conv and depthwise, input IA3 after
        assert len(kinds["ia3_l"]) == 2 and len(kinds["ia3_in"]) == 2
        rows = [e["methods"] for e in summary["trainable_layers"]]
        assert rows == ["ia3", "ia3", "ia3_input", "ia3_input"]
    else:  # IA3 on the 4 layers with weights; the head also trains its weights and bias
        assert len(kinds["ia3_l"]) == 4 and "gamma" not in kinds
        assert summary["trainable_layers"][-1]["methods"] == "last_layer+ia3"


def test_packed_flash_holds_the_files(chain):
    root = chain["root"]
    container = pack.model_container(
        (root / "m" / "model.tflite").read_bytes(), (root / "m" / "plan.bin").read_bytes()
    )
    dataset = (root / "d" / "dataset.bin").read_bytes()
    parsed = datasets.parse_dataset_blob(dataset)
    assert len(parsed.x_train) + len(parsed.x_test) == 100 and parsed.num_classes == 10
    for board, folder in chain["packed"].items():
        regs = {
            label: (int(a, 16), int(s, 16))
            for label, a, s in REG.findall((folder / f"{board}.overlay").read_text())
        }
        ih = IntelHex()
        ih.loadhex(io.StringIO((folder / "partitions.hex").read_text()))
        for label, data in (("peft_model", container), ("peft_dataset", dataset)):
            addr, size = regs[label]
            assert size >= len(data)
            assert ih.tobinstr(start=addr, size=len(data)) == data
            assert (folder / f"{label}.bin").read_bytes() == data
        if board == "native_sim":
            flash = (folder / "flash.bin").read_bytes()
            addr, _ = regs["peft_dataset"]
            assert len(flash) == 2 * 1024 * 1024
            assert flash[addr : addr + len(dataset)] == dataset


def _one_line_error(done, *needles):
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("micropeft: error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_files(tmp_path):
    _one_line_error(
        _cli("prepare-model", "--tflite", tmp_path / "no.tflite", "--out", tmp_path / "o"),
        "not found",
    )
    _one_line_error(
        _cli("prepare-dataset", "--model", tmp_path / "no.tflite", "--out", tmp_path / "o"),
        "not found",
    )
    _one_line_error(
        _cli("pack", "--model-dir", tmp_path, "--dataset", tmp_path / "d.bin", "--out", tmp_path),
        "not found",
    )
    assert not (tmp_path / "o").exists()


def test_bad_model_file(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    _one_line_error(
        _cli("prepare-model", "--tflite", bad, "--out", tmp_path / "o"), "TensorFlow Lite"
    )
    _one_line_error(
        _cli("prepare-dataset", "--model", bad, "--out", tmp_path / "o"), "TensorFlow Lite"
    )
    assert not (tmp_path / "o").exists()


def test_unsupported_operator(tmp_path):
    import tensorflow as tf

    inputs = tf.keras.Input((8, 8, 1))
    x = tf.keras.layers.Conv2D(4, 3)(inputs)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(2)(x)
    rep = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 1)).astype(np.float32)
    path = tmp_path / "pool.tflite"
    path.write_bytes(convert.to_int8_tflite(tf.keras.Model(inputs, x), rep))
    _one_line_error(
        _cli("prepare-model", "--tflite", path, "--out", tmp_path / "o"),
        "MAX_POOL_2D",
        "operator 1",
    )


def test_budget_too_small(chain, tmp_path):
    full = chain["root"] / "m" / "full.tflite"
    done = _cli(
        "prepare-model", "--tflite", full, "--method", "full", "--ram-budget", "2k",
        "--out", tmp_path / "o",
    )  # fmt: skip
    _one_line_error(done, "budget 2,048 B", "--update layer")
    # The error names the buffers live at the training arena's peak.
    assert "the training arena peaks at " in done.stderr
    assert "of layer" in done.stderr and "tensor" in done.stderr
    assert "training arena total" in done.stdout  # the table is printed first
    assert "TOTAL DEVICE RAM" in done.stdout and "peak of the train work region" in done.stdout
    assert not (tmp_path / "o").exists()


def test_dataset_for_another_model_is_refused(chain, tmp_path):
    root = chain["root"]
    other = tmp_path / "other"
    done = _cli(
        "prepare-dataset", "--model", root / "m" / "model.tflite", "--source", "digits",
        "--limit", "100", "--input-range=-1,1", "--out", other,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    blob = bytearray((other / "dataset.bin").read_bytes())
    # A consistent blob for a 15x16 input (CRC made valid again).
    import struct
    import zlib

    struct.pack_into("<H", blob, 24, 15)
    struct.pack_into("<I", blob, 40, 15 * 16)
    struct.pack_into("<I", blob, 12, zlib.crc32(bytes(blob[16:])))
    Path(other / "bad.bin").write_bytes(bytes(blob))
    Path(other / "worse.bin").write_bytes(bytes(blob[:-1000]))
    _one_line_error(
        _cli("pack", "--model-dir", root / "m", "--dataset", other / "worse.bin", "--out", other),
        "dataset blob",
    )
    _one_line_error(
        _cli("pack", "--model-dir", root / "m", "--dataset", other / "bad.bin", "--out", other),
        "not prepared for this model",
    )
    _one_line_error(
        _cli(
            "pack",
            "--model-dir",
            root / "m",
            "--dataset",
            root / "d" / "dataset.bin",
            "--firmware-size",
            "1020k",
            "--out",
            tmp_path / "p",
        ),  # fmt: skip
        "do not fit",
    )
    assert not (tmp_path / "p").exists()


def _conf(path):
    return dict(
        line.split("=", 1) for line in path.read_text().splitlines() if line.startswith("CONFIG_")
    )


def test_pack_writes_the_board_configuration(chain):
    from micropeft.deploy import boards
    from micropeft.host import runtime
    from micropeft.planning.methods import METHODS

    root = chain["root"]
    device = (root / "m" / "model.tflite").read_bytes()
    plan = (root / "m" / "plan.bin").read_bytes()
    parsed = datasets.parse_dataset_blob((root / "d" / "dataset.bin").read_bytes())
    # References: the C runtime's own size queries and export, and TFLM's measured arena.
    trainer = runtime.Trainer(device, plan)
    h, w, c = trainer.plan.input_dims()
    tflm_used = convert.run_tflm(device, parsed.x_train[:1]).arena_used_bytes
    for board_name, folder in chain["packed"].items():
        conf = _conf(folder / f"{board_name}.conf")
        assert int(conf["CONFIG_PEFT_ARENA_SIZE"]) >= trainer.plan.arena_size("train")
        assert int(conf["CONFIG_PEFT_TFLM_ARENA_SIZE"]) >= tflm_used
        # Every training sample's split activation fits the cache (the images are small).
        assert int(conf["CONFIG_PEFT_SAMPLE_CACHE_SIZE"]) >= h * w * c * len(parsed.x_train)
        used = {m for m in METHODS if conf[f"CONFIG_PEFT_METHOD_{m.upper()}"] == "y"}
        assert {"lora", "bitfit"} <= used  # the chain's --method lora,bitfit
        assert not used & {"full", "sparse", "scale_shift"}
        assert (conf["CONFIG_PEFT_OPTIMIZER_SGD"], conf["CONFIG_PEFT_OPTIMIZER_ADAM"]) == ("y", "n")
        assert conf["CONFIG_PEFT_INT8_BACKWARD"] == "y"  # the chain's --int8-backward
        board = boards.get_board(board_name)
        if board.ram_size is not None:
            buffers = sum(int(v) for k, v in conf.items() if k.endswith("_SIZE") and "PEFT" in k)
            assert board.sample_ram_baseline + buffers <= board.ram_size


def test_images_hex_leaves_the_state_slots_alone(chain):
    folder = chain["packed"]["nrf52840dk"]
    regs = {
        label: (int(a, 16), int(s, 16))
        for label, a, s in REG.findall((folder / "nrf52840dk.overlay").read_text())
    }
    ih = IntelHex()
    ih.loadhex(io.StringIO((folder / "images.hex").read_text()))
    addresses = set(ih.addresses())
    for label in ("peft_model", "peft_dataset"):
        addr, _ = regs[label]
        data = (folder / f"{label}.bin").read_bytes()
        assert ih.tobinstr(start=addr, size=len(data)) == data
    for label in ("peft_state0", "peft_state1"):
        addr, size = regs[label]
        assert not addresses & set(range(addr, addr + size)), label


def test_pack_refuses_a_plan_over_the_board_ram(chain, tmp_path):
    import shutil

    model_dir = tmp_path / "m"
    shutil.copytree(chain["root"] / "m", model_dir)
    summary = json.loads((model_dir / "summary.json").read_text())
    summary["ram"]["train_arena"] = 240_000
    (model_dir / "summary.json").write_text(json.dumps(summary))
    done = _cli(
        "pack", "--board", "nrf52840dk", "--model-dir", model_dir, "--dataset",
        chain["root"] / "d" / "dataset.bin", "--out", tmp_path / "p",
    )  # fmt: skip
    _one_line_error(done, "does not fit the RAM of nrf52840dk", "training arena 240,000 B")
    assert not (tmp_path / "p").exists()
    # native_sim runs on the host: no RAM limit.
    done = _cli(
        "pack", "--board", "native_sim", "--model-dir", model_dir, "--dataset",
        chain["root"] / "d" / "dataset.bin", "--out", tmp_path / "sim",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _conf(tmp_path / "sim" / "native_sim.conf")["CONFIG_PEFT_ARENA_SIZE"] == "240000"


# ---- bad input, table-driven: every case one line on stderr, exit 2, nothing left ----


@pytest.fixture(scope="module")
def bad(chain, tmp_path_factory):
    """Broken and unsuitable input files next to the chain's good ones."""
    folder = tmp_path_factory.mktemp("bad")
    full = (chain["root"] / "m" / "full.tflite").read_bytes()
    (folder / "truncated.tflite").write_bytes(full[: len(full) // 2])
    (folder / "tail-cut.tflite").write_bytes(full[:-200])
    (folder / "empty.tflite").write_bytes(b"")
    (folder / "ten.tflite").write_bytes(b"TFL3" + bytes(6))
    (folder / "noise.tflite").write_bytes(np.random.default_rng(0).bytes(5000))
    (folder / "text.tflite").write_text("not a model\n")
    # a dataset blob of the chain model's shape (16x16x1) but another input quantization
    other = datasets.dataset_blob(
        np.zeros((10, 16, 16, 1), np.int8), np.arange(10), np.zeros((10, 16, 16, 1), np.int8),
        np.arange(10), datasets.QuantParams(0.5, 3), 10,
    )  # fmt: skip
    (folder / "other-quant").mkdir()
    (folder / "other-quant" / "dataset.bin").write_bytes(other)
    x = np.random.default_rng(1).uniform(0, 1, (20, 8, 8)).astype(np.float32)
    y = np.arange(20) % 2
    for name, xs, ys in (
        ("nan", np.where(x > 0.9, np.nan, x), y),
        ("inf", np.where(x > 0.9, np.inf, x), y),
        ("neg-inf", np.where(x > 0.9, -np.inf, x), y),
        ("empty", x[:0], y[:0]),
        ("one-class", x, y * 0),
        ("negative-label", x, y - 1),
        ("float-labels", x, y.astype(np.float32)),
        ("short-labels", x, y[:5]),
        ("bad-shape", x[:, :, :, None, None], y),
    ):
        np.savez(folder / f"{name}.npz", x=xs, y=ys)
    np.savez(folder / "no-y.npz", x=x)
    (folder / "not.npz").write_bytes(b"PK\x03\x04 broken zip")
    (folder / "file").write_text("a file, not a folder\n")
    (folder / "typo.yaml").write_text("method: lora\nrank: 4\n")
    (folder / "drop.yaml").write_text("method: lora\nlora_dropout: 0.05\n")
    # Model folders with one thing wrong each.
    for name in ("no-plan", "bad-summary", "truncated-model"):
        (folder / name).mkdir()
        for f in ("model.tflite", "plan.bin", "summary.json"):
            (folder / name / f).write_bytes((chain["root"] / "m" / f).read_bytes())
    (folder / "no-plan" / "plan.bin").unlink()
    (folder / "bad-summary" / "summary.json").write_text("{not json")
    model = (chain["root"] / "m" / "model.tflite").read_bytes()
    (folder / "truncated-model" / "model.tflite").write_bytes(model[:100])
    dataset = (chain["root"] / "d" / "dataset.bin").read_bytes()
    (folder / "dataset-truncated.bin").write_bytes(dataset[:40])
    (folder / "dataset-noise.bin").write_bytes(np.random.default_rng(2).bytes(3000))
    (folder / "results-binary.json").write_bytes(b"\xff\xfe\x00binary")
    (folder / "results-bad.json").write_text("{")
    (folder / "int8-maybe.yaml").write_text("method: bitfit\nint8_backward: maybe\n")
    (folder / "qf-maybe.yaml").write_text("method: bitfit\nquantized_forward: maybe\n")
    (folder / "results-schema.json").write_text('{"schema": 0}')
    return folder


M, D = "{root}/m", "{root}/d/dataset.bin"
FULL, DEVICE = f"{M}/full.tflite", f"{M}/model.tflite"
PM = ["prepare-model", "--out", "{out}"]
PD = ["prepare-dataset", "--out", "{out}"]
PK = ["pack", "--out", "{out}"]
BE = ["bench", "--no-cm4", "--out", "{out}"]
UNWRITABLE = ("/proc/micropeft-out", "/sys/micropeft-out", "/dev/null/out", "{bad}/file")

BAD_INPUTS: dict[str, tuple[list[str], str]] = {
    # top level
    "no command": ([], "required"),
    "unknown command": (["frobnicate"], "invalid choice"),
    "build-host extra argument": (["build-host", "--bogus"], "unrecognized"),
    # prepare-model
    "pm no out": (["prepare-model", "--tflite", FULL], "--out"),
    "pm tflite missing": ([*PM, "--tflite", "{bad}/missing.tflite"], "not found"),
    "pm int8_backward not a bool": (
        [*PM, "--tflite", FULL, "--config", "{bad}/int8-maybe.yaml"],
        "int8_backward must be true or false",
    ),
    "pm quantized_forward not a bool": (
        [*PM, "--tflite", FULL, "--config", "{bad}/qf-maybe.yaml"],
        "quantized_forward must be true or false",
    ),
    "pm tflite truncated": ([*PM, "--tflite", "{bad}/truncated.tflite"], "--tflite"),
    "pm tflite tail cut": ([*PM, "--tflite", "{bad}/tail-cut.tflite"], "--tflite"),
    "pm tflite empty": ([*PM, "--tflite", "{bad}/empty.tflite"], "--tflite"),
    "pm tflite ten bytes": ([*PM, "--tflite", "{bad}/ten.tflite"], "--tflite"),
    "pm tflite noise": ([*PM, "--tflite", "{bad}/noise.tflite"], "--tflite"),
    "pm tflite text": ([*PM, "--tflite", "{bad}/text.tflite"], "--tflite"),
    "pm tflite is a folder": ([*PM, "--tflite", "{bad}"], "not found"),
    "pm device model": ([*PM, "--tflite", DEVICE], "full.tflite"),
    "pm num-classes 0": ([*PM, "--tflite", FULL, "--num-classes", "0"], "at least 2"),
    "pm num-classes 1": ([*PM, "--tflite", FULL, "--num-classes", "1"], "at least 2"),
    "pm num-classes negative": ([*PM, "--tflite", FULL, "--num-classes", "-3"], "at least 2"),
    "pm num-classes text": ([*PM, "--tflite", FULL, "--num-classes", "ten"], "invalid int"),
    "pm num-classes mismatch": ([*PM, "--tflite", FULL, "--num-classes", "5"], "10 classes"),
    "pm two sources": ([*PM, "--tflite", FULL, "--arch", "tiny_cnn"], "one model source"),
    "pm unknown arch": ([*PM, "--arch", "resnet"], "invalid choice"),
    "pm keras missing": ([*PM, "--keras", "{bad}/missing.keras"], "missing.keras"),
    "pm input range text": ([*PM, "--tflite", FULL, "--input-range", "a,b"], "LOW,HIGH"),
    "pm input range reversed": ([*PM, "--tflite", FULL, "--input-range", "1,0"], "below"),
    "pm input range one value": ([*PM, "--tflite", FULL, "--input-range", "1"], "LOW,HIGH"),
    "pm pretrain epochs negative": ([*PM, "--arch", "tiny_cnn", "--pretrain-epochs", "-1"], ">= 0"),
    "pm unknown method": ([*PM, "--tflite", FULL, "--method", "magic"], "magic"),
    "pm unknown recipe": ([*PM, "--tflite", FULL, "--config", "lora_r5"], "known recipes: bitfit"),
    "pm recipe missing": ([*PM, "--tflite", FULL, "--config", "{bad}/r.yaml"], "not found"),
    "pm recipe unknown key": ([*PM, "--tflite", FULL, "--config", "{bad}/typo.yaml"], "'rank'"),
    "pm recipe hf dropout": ([*PM, "--tflite", FULL, "--config", "{bad}/drop.yaml"], "dropout"),
    "pm recipe not yaml": ([*PM, "--tflite", FULL, "--config", "{bad}/file"], "mapping"),
    "ly missing": (["layers", "{bad}/missing.tflite"], "not found"),
    "ly device model": (["layers", DEVICE], "full.tflite"),
    "ly folder without full": (["layers", "{bad}"], "full.tflite"),
    "ly truncated": (["layers", "{bad}/truncated.tflite"], "truncated"),
    "ly text": (["layers", "{bad}/text.tflite"], "not a TensorFlow Lite model"),
    "ly no model": (["layers"], "required"),
    "pm unknown optimizer": ([*PM, "--tflite", FULL, "--optimizer", "rmsprop"], "invalid choice"),
    "pm act cache": ([*PM, "--tflite", FULL, "--act-cache", "s4"], "invalid choice"),
    "pm lr negative": ([*PM, "--tflite", FULL, "--lr", "-1"], "learning rate"),
    "pm lr nan": ([*PM, "--tflite", FULL, "--lr", "nan"], "learning rate"),
    "pm linear schedule without its length": (
        [*PM, "--tflite", FULL, "--lr-schedule", "linear"],
        "give its number of updates, lr_decay_steps",
    ),
    "pm decay steps of a constant rate": (
        [*PM, "--tflite", FULL, "--lr-decay-steps", "40"],
        "lr_decay_steps is the length of the linear schedule",
    ),
    "pm decay steps zero": (
        [*PM, "--tflite", FULL, "--lr-schedule", "linear", "--lr-decay-steps", "0"],
        "lr_decay_steps must be at least 1",
    ),
    "pm decay steps past the limit": (
        [*PM, "--tflite", FULL, "--lr-schedule", "linear", "--lr-decay-steps", "16777216"],
        "lr_decay_steps must be an integer in 0..16777215",
    ),
    "pm unknown schedule": ([*PM, "--tflite", FULL, "--lr-schedule", "cosine"], "invalid choice"),
    "pm budget tiny": ([*PM, "--tflite", FULL, "--ram-budget", "2k"], "budget"),
    "pm budget text": ([*PM, "--tflite", FULL, "--ram-budget", "lots"], "lots"),
    "pm config missing": ([*PM, "--tflite", FULL, "--config", "{bad}/missing.yaml"], "missing"),
    # prepare-dataset
    "pd no model": (["prepare-dataset", "--out", "{out}"], "--model"),
    "pd model missing": ([*PD, "--model", "{bad}/missing.tflite"], "not found"),
    "pd model truncated": ([*PD, "--model", "{bad}/truncated.tflite"], "--model"),
    "pd model tail cut": ([*PD, "--model", "{bad}/tail-cut.tflite"], "--model"),
    "pd model empty": ([*PD, "--model", "{bad}/empty.tflite"], "--model"),
    "pd model noise": ([*PD, "--model", "{bad}/noise.tflite"], "--model"),
    "pd unknown source": ([*PD, "--model", DEVICE, "--source", "cifar1000"], "cifar1000"),
    "pd npz nan": ([*PD, "--model", DEVICE, "--source", "{bad}/nan.npz"], "NaN or infinite"),
    "pd npz inf": ([*PD, "--model", DEVICE, "--source", "{bad}/inf.npz"], "NaN or infinite"),
    "pd npz -inf": ([*PD, "--model", DEVICE, "--source", "{bad}/neg-inf.npz"], "NaN or infinite"),
    "pd npz empty": ([*PD, "--model", DEVICE, "--source", "{bad}/empty.npz"], "no samples"),
    "pd npz one class": ([*PD, "--model", DEVICE, "--source", "{bad}/one-class.npz"], "at least 2"),
    "pd npz negative label": (
        [*PD, "--model", DEVICE, "--source", "{bad}/negative-label.npz"],
        ">= 0",
    ),
    "pd npz float labels": (
        [*PD, "--model", DEVICE, "--source", "{bad}/float-labels.npz"],
        "integer",
    ),
    "pd npz short labels": (
        [*PD, "--model", DEVICE, "--source", "{bad}/short-labels.npz"],
        "labels",
    ),
    "pd npz bad shape": ([*PD, "--model", DEVICE, "--source", "{bad}/bad-shape.npz"], "images"),
    "pd npz no y": ([*PD, "--model", DEVICE, "--source", "{bad}/no-y.npz"], "'y'"),
    "pd npz broken": ([*PD, "--model", DEVICE, "--source", "{bad}/not.npz"], "npz"),
    "pd test fraction 1.5": ([*PD, "--model", DEVICE, "--test-fraction", "1.5"], "fraction"),
    "pd test fraction 0": ([*PD, "--model", DEVICE, "--test-fraction", "0"], "fraction"),
    "pd limit 0": ([*PD, "--model", DEVICE, "--source", "digits", "--limit", "0"], "limit"),
    "pd limit negative": ([*PD, "--model", DEVICE, "--source", "digits", "--limit", "-5"], "limit"),
    "pd input range": ([*PD, "--model", DEVICE, "--input-range", "x"], "LOW,HIGH"),
    # pack
    "pk model dir missing": ([*PK, "--model-dir", "{bad}/none", "--dataset", D], "not found"),
    "pk no plan": ([*PK, "--model-dir", "{bad}/no-plan", "--dataset", D], "plan"),
    "pk bad summary": ([*PK, "--model-dir", "{bad}/bad-summary", "--dataset", D], "JSON"),
    "pk truncated model": ([*PK, "--model-dir", "{bad}/truncated-model", "--dataset", D], "model"),
    "pk dataset missing": ([*PK, "--model-dir", M, "--dataset", "{bad}/none.bin"], "not found"),
    "pk dataset truncated": (
        [*PK, "--model-dir", M, "--dataset", "{bad}/dataset-truncated.bin"],
        "dataset",
    ),
    "pk dataset noise": (
        [*PK, "--model-dir", M, "--dataset", "{bad}/dataset-noise.bin"],
        "dataset",
    ),
    "pk dataset is a model": ([*PK, "--model-dir", M, "--dataset", FULL], "dataset"),
    "pk unknown board": ([*PK, "--model-dir", M, "--dataset", D, "--board", "esp32"], "esp32"),
    "pk firmware size text": (
        [*PK, "--model-dir", M, "--dataset", D, "--firmware-size", "12q"],
        "12q",
    ),
    "pk firmware size odd": (
        [*PK, "--model-dir", M, "--dataset", D, "--firmware-size", "1001"],
        "multiple",
    ),
    "pk firmware too big": (
        [*PK, "--model-dir", M, "--dataset", D, "--firmware-size", "4096k"],
        "flash",
    ),
    "pk state size text": ([*PK, "--model-dir", M, "--dataset", D, "--state-size", "big"], "big"),
    # bench
    "be model missing": (
        [*BE, "--model", "{bad}/missing.tflite", "--dataset", "digits"],
        "not found",
    ),
    "be model truncated": (
        [*BE, "--model", "{bad}/truncated.tflite", "--dataset", "digits"],
        "--model",
    ),
    "be model noise": ([*BE, "--model", "{bad}/noise.tflite", "--dataset", "digits"], "--model"),
    "be model without dataset": ([*BE, "--model", FULL], "--model needs --dataset"),
    "be unknown schedule": ([*BE, "--lr-schedule", "cosine"], "invalid choice"),
    "be dataset without model": ([*BE, "--dataset", "digits"], "--dataset needs --model"),
    "be device model": ([*BE, "--model", DEVICE, "--dataset", D], "give the whole model beside"),
    "be folder without full.tflite": (
        [*BE, "--model", "{bad}", "--dataset", "digits"],
        "no full.tflite in this folder",
    ),
    "be dataset for another model": (
        [*BE, "--model", M, "--dataset", "{bad}/other-quant"],
        "was not prepared for",
    ),
    "be dataset nan": ([*BE, "--model", FULL, "--dataset", "{bad}/nan.npz"], "NaN or infinite"),
    "be dataset empty": ([*BE, "--model", FULL, "--dataset", "{bad}/empty.npz"], "no samples"),
    "be unknown task": ([*BE, "--task", "imagenet-22k"], "unknown task"),
    "be unknown method": ([*BE, "--methods", "magic"], "magic"),
    "be sweep unknown method": ([*BE, "--sweep", "--methods", "magic"], "choose from full"),
    "be seeds 0": ([*BE, "--seeds", "0"], "at least 1"),
    "be epochs 0": ([*BE, "--epochs", "0"], "at least 1"),
    "be batch size 0": ([*BE, "--batch-size", "0"], "at least 1"),
    "be input range": (
        [*BE, "--model", FULL, "--dataset", "digits", "--input-range", "q"],
        "LOW,HIGH",
    ),
    # report
    "rp results missing": (["report", "{bad}/missing.json", "--out", "{out}"], "not found"),
    "rp results binary": (["report", "{bad}/results-binary.json", "--out", "{out}"], "JSON"),
    "rp results broken": (["report", "{bad}/results-bad.json", "--out", "{out}"], "JSON"),
    "rp results schema": (["report", "{bad}/results-schema.json", "--out", "{out}"], "schema"),
}
for _where in UNWRITABLE:
    _name = _where.rsplit("/", 2)[-2]
    BAD_INPUTS[f"pm out {_name}"] = (["prepare-model", "--tflite", FULL, "--out", _where], "--out")
    BAD_INPUTS[f"pd out {_name}"] = (
        ["prepare-dataset", "--model", DEVICE, "--out", _where],
        "--out",
    )
    BAD_INPUTS[f"pk out {_name}"] = (
        ["pack", "--model-dir", M, "--dataset", D, "--out", _where],
        "--out",
    )
    BAD_INPUTS[f"be out {_name}"] = (["bench", "--quick", "--out", _where], "--out")
    BAD_INPUTS[f"rp out {_name}"] = (["report", "{bad}/results-bad.json", "--out", _where], "--out")


def test_bench_reads_the_prepared_model_and_dataset_folders(chain, tmp_path):
    from micropeft.commands import input_range_beside, whole_model
    from micropeft.eval import tasks

    root = chain["root"]
    model = whole_model(root / "m")
    assert model == root / "m" / "full.tflite"
    cfg = tasks.BenchConfig(model_path=str(model), dataset=str(root / "d"), task="user")
    data = tasks.prepare_task(cfg, tmp_path, {})
    # exactly prepare-dataset's int8 samples (back through the model's input quantization)
    # and its split, as the device gets them
    blob = datasets.parse_dataset_blob((root / "d" / "dataset.bin").read_bytes())
    quant = blob.quant
    for x, y, want_x, want_y in (
        (data.x_train, data.y_train, blob.x_train, blob.y_train),
        (data.x_test, data.y_test, blob.x_test, blob.y_test),
    ):
        np.testing.assert_array_equal(np.round(x / quant.scale) + quant.zero_point, want_x)
        np.testing.assert_array_equal(y, want_y)
    assert "prepare-dataset's split" in data.setup["target"]
    # the input range: --input-range, else summary.json beside the model, else 0,1
    other = tmp_path / "other"
    other.mkdir()
    (other / "full.tflite").write_bytes(model.read_bytes())
    assert input_range_beside(other / "full.tflite", None) == (0.0, 1.0)
    (other / "summary.json").write_text(json.dumps({"input_range": [-1, 1]}))
    assert input_range_beside(other / "full.tflite", None) == (-1.0, 1.0)
    assert input_range_beside(other / "full.tflite", "0,2") == (0.0, 2.0)


def test_bench_holds_out_prepare_datasets_test_set_of_a_raw_source(chain, tmp_path):
    """One split definition: bench --dataset digits measures on the samples a default
    prepare-dataset --source digits holds out (same fraction, same seed, same order)."""
    from micropeft.commands import input_range_beside
    from micropeft.eval import tasks

    root = chain["root"]
    done = _cli(
        "prepare-dataset", "--model", root / "m" / "model.tflite", "--source", "digits",
        "--out", tmp_path / "d",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    model = root / "m" / "full.tflite"
    cfg = tasks.BenchConfig(
        model_path=str(model),
        dataset="digits",
        task="user",
        input_range=input_range_beside(model, None),
        train_samples=10_000,
        test_samples=10_000,
    )
    data = tasks.prepare_task(cfg, tmp_path, {})
    blob = datasets.parse_dataset_blob((tmp_path / "d" / "dataset.bin").read_bytes())
    assert len(blob.y_test) == round(1797 * datasets.TEST_FRACTION)
    quant = blob.quant
    for x, y, want_x, want_y in (
        (data.x_train, data.y_train, blob.x_train, blob.y_train),
        (data.x_test, data.y_test, blob.x_test, blob.y_test),
    ):
        q = np.clip(np.round(x / quant.scale) + quant.zero_point, -128, 127)
        np.testing.assert_array_equal(q, want_x)
        np.testing.assert_array_equal(y, want_y)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_clean_line(case, chain, bad, tmp_path, capsys, monkeypatch):
    from micropeft import cli

    monkeypatch.setenv("MICROPEFT_CACHE", chain["env"]["MICROPEFT_CACHE"])
    monkeypatch.chdir(tmp_path)
    argv, needle = BAD_INPUTS[case]
    out = tmp_path / "out"
    values = {"root": chain["root"], "bad": bad, "out": out}
    argv = [a.format(**values) for a in argv]
    watched = (tmp_path, chain["root"], bad)
    before = [_tree(w) for w in watched]
    try:
        code = cli.main(argv)
    except SystemExit as done:  # argparse
        code = done.code
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    # micropeft's own errors, or argparse's ("micropeft COMMAND: error: ...").
    assert re.match(r"micropeft( [a-z-]+)?: error: ", lines[0]), lines[0]
    assert needle in lines[0], lines[0]
    assert [_tree(w) for w in watched] == before, "the command left files behind"
    assert not out.exists()


def test_bad_input_table_is_large():
    assert len(BAD_INPUTS) >= 60
    commands = {argv[0] for argv, _ in BAD_INPUTS.values() if argv}
    assert commands >= {"prepare-model", "prepare-dataset", "pack", "bench", "report", "layers"}
