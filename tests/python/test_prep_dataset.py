"""Dataset preparation: sources, fitting, quantization, split and the blob.

The blob is read back with a parser written here from docs/formats.md
("Dataset blob"), its CRC checked with zlib, and its quantization compared
with the model input's as TFLite's interpreter reports it."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from micropeft.errors import UserError
from micropeft.prep import convert, datasets, models
from micropeft.prep.graph import QuantParams


def parse_blob(blob: bytes) -> dict:
    """Independent reader of the documented layout."""
    magic, version, header, total, crc = struct.unpack_from("<4sHHII", blob, 0)
    n_train, n_test = struct.unpack_from("<II", blob, 16)
    h, w, c, classes = struct.unpack_from("<HHHH", blob, 24)
    scale, zero = struct.unpack_from("<fi", blob, 32)
    sample_bytes, s_off, l_off = struct.unpack_from("<III", blob, 40)
    n = n_train + n_test
    return {
        "magic": magic,
        "version": version,
        "header": header,
        "total": total,
        "crc_ok": zlib.crc32(blob[16:total]) == crc,
        "reserved_zero": blob[52:64] == bytes(12),
        "train": n_train,
        "test": n_test,
        "shape": (h, w, c),
        "classes": classes,
        "scale": scale,
        "zero": zero,
        "sample_bytes": sample_bytes,
        "x": np.frombuffer(blob, np.int8, n * h * w * c, s_off).reshape(n, h, w, c),
        "y": np.frombuffer(blob, np.uint8, n, l_off),
        "labels_end": l_off + n,
    }


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model = models.build_tiny_cnn(12, 3, 10)
    rep = np.random.default_rng(0).uniform(-1, 1, (16, 12, 12, 3)).astype(np.float32)
    path = folder / "full.tflite"
    path.write_bytes(convert.to_int8_tflite(model, rep))  # input range [-1, 1]
    return path


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "micropeft", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_blob_parses_and_matches_the_model_input(model_file, tmp_path):
    done = _cli(
        "prepare-dataset", "--model", model_file, "--source", "digits", "--out", tmp_path,
        "--limit", "200", "--input-range=-1,1", "--seed", "3", "--test-fraction", "0.2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    blob = (tmp_path / "dataset.bin").read_bytes()
    b = parse_blob(blob)
    assert b["magic"] == b"PEFD" and b["version"] == 1 and b["header"] == 64
    assert b["crc_ok"] and b["reserved_zero"] and b["total"] == len(blob)
    assert b["total"] % 4 == 0 and b["labels_end"] <= b["total"]
    assert (b["train"], b["test"]) == (160, 40)
    assert b["shape"] == (12, 12, 3) and b["sample_bytes"] == 12 * 12 * 3 and b["classes"] == 10
    interpreter = convert.tflite_interpreter(model_file.read_bytes())
    scale, zero = interpreter.get_input_details()[0]["quantization"]
    assert b["scale"] == pytest.approx(scale, rel=1e-7) and b["zero"] == zero
    # Stratified: every class in both parts, in proportion.
    # (digits' classes hold 174..183 samples, so proportions are within one sample).
    assert np.all(np.abs(np.bincount(b["y"][:160], minlength=10) - 16) <= 1)
    assert np.all(np.abs(np.bincount(b["y"][160:], minlength=10) - 4) <= 1)
    # Gray digits were repeated to 3 channels, and the range [0, 1] maps onto [-1, 1].
    x = b["x"].astype(np.float64)
    assert np.array_equal(x[..., 0], x[..., 2])
    real = (x - zero) * scale
    assert real.min() == pytest.approx(-1.0, abs=scale) and real.max() <= 1.0 + scale
    # Flipping one byte breaks the CRC.
    broken = bytearray(blob)
    broken[100] ^= 1
    assert not parse_blob(bytes(broken))["crc_ok"]
    with pytest.raises(UserError, match="CRC"):
        datasets.parse_dataset_blob(bytes(broken))


def test_quantize_uses_scale_and_zero_point():
    x = np.array([0.0, 0.25, 0.5, 1.0], np.float32).reshape(1, 2, 2, 1)
    q = datasets.quantize(x, (-1.0, 1.0), QuantParams(1.0 / 128.0, 0))
    # real = 2x - 1 -> q = round(real / scale) + zero, clipped: 128 -> 127.
    assert q.ravel().tolist() == [-128, -64, 0, 127]


def test_split_is_seeded_stratified_and_disjoint():
    y = np.repeat(np.arange(5), 20)
    train, test = datasets.stratified_split(y, 0.25, seed=1)
    again, _ = datasets.stratified_split(y, 0.25, seed=1)
    other, _ = datasets.stratified_split(y, 0.25, seed=2)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert not set(train) & set(test) and len(train) + len(test) == 100
    assert np.all(np.bincount(y[test]) == 5)


def test_fit_images_resizes_and_converts_channels():
    rgb = np.zeros((2, 8, 8, 3), np.float32)
    rgb[..., 1] = 1.0  # pure green: luminance 0.587
    gray = datasets.fit_images(rgb, (4, 4, 1))
    assert gray.shape == (2, 4, 4, 1) and np.allclose(gray, 0.587, atol=1e-5)


def test_npz_and_folder_sources(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 6, 6), dtype=np.uint8)
    y = np.repeat([0, 1, 2], 4)
    np.savez(tmp_path / "d.npz", x=x, y=y, class_names=np.array(["a", "b", "c"]))
    data = datasets.load_source(str(tmp_path / "d.npz"))
    assert data.x.shape == (12, 6, 6, 1) and data.class_names == ["a", "b", "c"]
    assert np.allclose(data.x[..., 0], x / 255.0)
    for name in ("cats", "dogs"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)).save(
                tmp_path / "imgs" / name / f"{i}.png"
            )
    data = datasets.load_source(str(tmp_path / "imgs"))
    assert data.x.shape == (6, 5, 7, 3) and data.class_names == ["cats", "dogs"]
    assert data.y.tolist() == [0, 0, 0, 1, 1, 1]


def test_builtin_sources():
    animals = datasets.load_source("animal-mnist")
    assert animals.x.shape == (10000, 28, 28, 1) and animals.num_classes == 10
    assert np.all(np.bincount(animals.y) == 1000)
    patches = datasets.load_source("skimage-patches")
    assert patches.x.shape == (1600, 64, 64, 1) and patches.num_classes == 8


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing.npz", "not found"),
        ("nonsense", "unknown dataset source"),
        ("tfds:mnist", "tfds|TensorFlow Datasets"),
    ],
)
def test_bad_sources(source, message, tmp_path):
    with pytest.raises(UserError, match=message):
        datasets.load_source(source if source != "missing.npz" else str(tmp_path / source))
    np.savez(tmp_path / "nolabels.npz", x=np.zeros((3, 4, 4)))
    with pytest.raises(UserError, match="'x' and 'y'"):
        datasets.load_source(str(tmp_path / "nolabels.npz"))


def test_class_count_mismatch_is_one_line_error(model_file, tmp_path):
    done = _cli(
        "prepare-dataset", "--model", model_file, "--source", "skimage-patches", "--out", tmp_path
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "8 classes" in lines[0] and "10" in lines[0], done.stderr
    assert not (tmp_path / "dataset.bin").exists()
