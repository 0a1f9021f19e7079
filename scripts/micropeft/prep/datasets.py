"""Datasets: built-in and user sources, fitted to a model's input, packed in a blob.

Sources (`load_source`):

    animal-mnist        10,000 28x28 grayscale animal silhouettes, 10 classes (bundled
                        with the `animal-mnist` wheel; read directly from its data files)
    digits              scikit-learn's 1,797 8x8 handwritten digits, 10 classes
    skimage-patches     64x64 crops of 8 of scikit-image's bundled images (brick, grass,
                        gravel, camera, coins, moon, cell, text; colour ones in gray), one
                        class per image, 200 random crops each: a texture-recognition task
    japanese-vowels     sensor series (bundled with the `sktime` wheel, read from its .ts
                        files): 640 utterances of 9 speakers, 12 LPC cepstrum coefficients
                        per frame, 7 to 29 frames; the class is the speaker
    japanese-vowels-a   speakers 1-5 of japanese-vowels (5 classes)
    japanese-vowels-b   speakers 6-9 of japanese-vowels (4 classes): new users
    basic-motions       80 smart-watch recordings (sktime), 6 channels (3-axis accelerometer
                        and gyroscope), 100 steps at 10 Hz, 4 activities
    PATH.npz            arrays `x` (N, H, W[, C]) and `y` (N,), optional `class_names`;
                        for a (T, 1, C) model, `x` is (N, T, C) or (N, T, 1, C) series
    PATH/               a folder with one sub-folder of images per class
    tfds:NAME[:SPLIT]   a TensorFlow Datasets dataset (needs tensorflow-datasets, online)

Every source yields floats in [0, 1], shaped (N, H, W, C): images, or series as
(N, T, 1, C) (time on the height axis, one column, any channel count). Series are
scaled per channel (a sensor's axes have their own units): the 1st and 99th
percentiles over the whole dataset map to 0 and 1, clipped. `fit_images` resizes
images to the model input (bilinear) and converts channels (gray to RGB by
repetition, RGB to gray by luminance); it resamples series to the model's length
(linear interpolation in time) and never converts their channels. `quantize` maps
[0, 1] onto the input range the model was trained with, then onto its int8 scale
and zero point. The blob layout is in docs/formats.md, "Dataset blob".
"""

from __future__ import annotations

import gzip
import pickle
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from micropeft import formats
from micropeft.errors import UserError
from micropeft.prep.graph import QuantParams

BUILTIN = (
    "animal-mnist",
    "digits",
    "skimage-patches",
    "japanese-vowels",
    "japanese-vowels-a",
    "japanese-vowels-b",
    "basic-motions",
)
# Built-in series sources: (sktime dataset folder, the class labels kept; None: all).
SKTIME_SOURCES: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "japanese-vowels": ("JapaneseVowels", None),
    "japanese-vowels-a": ("JapaneseVowels", ("1", "2", "3", "4", "5")),
    "japanese-vowels-b": ("JapaneseVowels", ("6", "7", "8", "9")),
    "basic-motions": ("BasicMotions", None),
}
# Series scaling: these percentiles of each channel map to 0 and 1.
SERIES_PERCENTILES = (1.0, 99.0)
ANIMAL_CLASSES = (
    "bear",
    "bird",
    "cat",
    "cow",
    "dog",
    "elephant",
    "giraffe",
    "horse",
    "sheep",
    "zebra",
)
SKIMAGE_IMAGES = ("brick", "grass", "gravel", "camera", "coins", "moon", "cell", "text")
PATCH_SIZE = 64
PATCHES_PER_IMAGE = 200
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

DATASET_MAGIC = formats.DATASET.magic
DATASET_VERSION = formats.DATASET.version
HEADER_SIZE = formats.DATASET.header_size


@dataclass
class Dataset:
    """Floats in [0, 1], images (N, H, W, C) or series (N, T, 1, C); labels; class names."""

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    name: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def series(self) -> bool:
        return is_series(self.x.shape[1:])


def is_series(shape: tuple[int, ...]) -> bool:
    """A (T, 1, C) or (1, T, C) input (T > 1): a sensor series, not an image."""
    h, w = int(shape[0]), int(shape[1])
    return (w == 1) != (h == 1)


def _series01(x: np.ndarray, where: str) -> np.ndarray:
    """(N, T, 1, C) series scaled per channel onto [0, 1] (SERIES_PERCENTILES), clipped."""
    x = np.asarray(x)
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.number):
        raise UserError(f"{where}: series values must be numbers, not {x.dtype}")
    x = x.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise UserError(f"{where}: {bad} series value(s) are NaN or infinite")
    if x.size == 0:
        return x
    flat = x.reshape(-1, x.shape[-1])
    low, high = np.percentile(flat, SERIES_PERCENTILES, axis=0).astype(np.float32)
    span = np.maximum(high - low, 1e-12)
    return np.clip((x - low) / span, 0.0, 1.0).astype(np.float32)


def _to_nhwc01(x: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise UserError(f"{where}: images must be (N, H, W) or (N, H, W, 1|3|4), got {x.shape}")
    if x.dtype == np.bool_:
        x = x.astype(np.float32)
    elif np.issubdtype(x.dtype, np.integer):
        top = 255.0 if x.max(initial=0) > 1 else 1.0
        x = x.astype(np.float32) / top
    else:
        x = x.astype(np.float32)
        bad = int(np.count_nonzero(~np.isfinite(x)))
        if bad:
            raise UserError(f"{where}: {bad} pixel value(s) are NaN or infinite")
        if x.size and (x.min() < 0 or x.max() > 1):
            low, high = float(x.min()), float(x.max())
            x = (x - low) / max(high - low, 1e-12)
    if x.shape[-1] == 4:
        x = x[..., :3]
    return x


def _animal_mnist() -> Dataset:
    try:
        import animal_mnist
    except ImportError as error:
        raise UserError(
            "the animal-mnist package is not installed (pip install animal-mnist)"
        ) from error
    folder = Path(animal_mnist.__file__).parent / "data" / "Animal_MNIST"
    files = folder / "animal_data_version_3.gz", folder / "animal_label_version_3.gz"
    if not all(f.is_file() for f in files):
        raise UserError(f"animal-mnist's data files are missing from {folder}")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pickles made with numpy 1 name numpy.core
        # The files are pickled numpy arrays shipped inside the installed wheel.
        with gzip.open(files[0], "rb") as f:
            x = pickle.load(f)  # noqa: S301
        with gzip.open(files[1], "rb") as f:
            y = pickle.load(f)  # noqa: S301
    return Dataset(
        _to_nhwc01(x, "animal-mnist"), np.asarray(y, np.int64), list(ANIMAL_CLASSES), "animal-mnist"
    )


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32) / 16.0
    return Dataset(
        x[..., None], bunch.target.astype(np.int64), [str(i) for i in range(10)], "digits"
    )


def _skimage_patches(seed: int) -> Dataset:
    import skimage.data
    from skimage.color import rgb2gray

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, name in enumerate(SKIMAGE_IMAGES):
        image = np.asarray(getattr(skimage.data, name)())
        gray = rgb2gray(image[..., :3]) if image.ndim == 3 else image.astype(np.float32) / 255.0
        h, w = gray.shape
        tops = rng.integers(0, h - PATCH_SIZE + 1, PATCHES_PER_IMAGE)
        lefts = rng.integers(0, w - PATCH_SIZE + 1, PATCHES_PER_IMAGE)
        for top, left in zip(tops, lefts, strict=True):
            xs.append(gray[top : top + PATCH_SIZE, left : left + PATCH_SIZE])
            ys.append(label)
    x = np.stack(xs).astype(np.float32)[..., None]
    return Dataset(x, np.asarray(ys, np.int64), list(SKIMAGE_IMAGES), "skimage-patches")


def _npz(path: Path, series: bool) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data or "y" not in data:
                raise UserError(f"{path}: needs arrays 'x' and 'y' (has {sorted(data.files)})")
            x, y = data["x"], data["y"]
            names = [str(n) for n in data["class_names"]] if "class_names" in data else None
    except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as error:
        raise UserError(f"{path}: not a readable .npz file ({error})") from error
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{path}: 'y' must be {len(x)} integer labels, got {y.shape} {y.dtype}")
    if len(y) and y.min() < 0:
        raise UserError(f"{path}: labels must be >= 0")
    count = int(y.max()) + 1 if len(y) else 0
    names = names or [str(i) for i in range(count)]
    if len(names) < count:
        raise UserError(f"{path}: {len(names)} class names for labels up to {count - 1}")
    x = np.asarray(x)
    if series and x.ndim == 3:
        x = x[:, :, None, :]
    if series and (x.ndim != 4 or 1 not in x.shape[1:3]):
        raise UserError(
            f"{path}: a (T, 1, C) model reads 'x' shaped (N, T, C) or (N, T, 1, C), got {x.shape}"
        )
    if x.ndim == 4 and x.shape[1] == 1 and x.shape[2] > 1:
        x = x.transpose(0, 2, 1, 3)  # (N, 1, T, C): time goes on the height axis
    if x.ndim == 4 and is_series(x.shape[1:]):
        return Dataset(_series01(x, str(path)), y.astype(np.int64), names, path.stem)
    return Dataset(_to_nhwc01(x, str(path)), y.astype(np.int64), names, path.stem)


def read_ts(path: Path) -> tuple[list[np.ndarray], list[str], list[str]]:
    """A .ts file (the UEA/UCR time-series archive format sktime ships): every case as a
    (C, T) float array, its class label, and the header's class labels in order.

    Lines starting with '#' are comments; '@' lines are the header up to '@data'; each
    data line is C dimensions separated by ':' then the label, each dimension T values
    separated by ','. Only cases without time stamps are read ('@timeStamps false');
    '?' (a missing value) is refused, as are dimensions of different lengths in a case.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not a readable .ts file ({error})") from error
    header: dict[str, list[str]] = {}
    cases: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        if not in_data:
            if not line.startswith("@"):
                raise UserError(f"{where}: expected a '@' header line before @data")
            key, *values = line.split()
            key = key.lower()
            if key == "@data":
                in_data = True
                if header.get("@timestamps", ["false"])[0].lower() != "false":
                    raise UserError(f"{where}: series with time stamps are not supported")
                if header.get("@classlabel", ["false"])[0].lower() != "true":
                    raise UserError(f"{where}: the file has no class labels (@classLabel)")
            else:
                header[key] = values
            continue
        *dims, label = line.split(":")
        if not dims:
            raise UserError(f"{where}: expected dimensions and a label separated by ':'")
        try:
            values = [np.asarray([float(v) for v in d.split(",")], np.float32) for d in dims]
        except ValueError as error:
            raise UserError(f"{where}: not a number ({error})") from error
        if any(not np.all(np.isfinite(v)) for v in values):
            raise UserError(f"{where}: missing or infinite values are not supported")
        if len({len(v) for v in values}) != 1:
            raise UserError(f"{where}: the dimensions of a case have different lengths")
        if cases and len(values) != cases[0].shape[0]:
            raise UserError(
                f"{where}: {len(values)} dimensions, the first case has {len(cases[0])}"
            )
        cases.append(np.stack(values))
        labels.append(label.strip())
    if not cases:
        raise UserError(f"{path}: no cases after @data")
    classes = header.get("@classlabel", ["true"])[1:] or sorted(set(labels))
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise UserError(f"{path}: labels {', '.join(unknown)} are not in @classLabel")
    return cases, labels, classes


def resample_series(series: np.ndarray, length: int) -> np.ndarray:
    """A (C, T) series linearly interpolated to (C, length) over its whole duration."""
    c, t = series.shape
    if t == length:
        return series.astype(np.float32)
    if t == 1:
        return np.repeat(series, length, axis=1).astype(np.float32)
    old, new = np.linspace(0.0, 1.0, t), np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(new, old, row) for row in series]).astype(np.float32)


def _sktime_folder(problem: str) -> Path:
    """sktime's bundled data folder, found without importing sktime (its imports need
    pandas and scikit-base; the .ts files need nothing)."""
    import importlib.util

    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the sktime package is not installed (pip install --no-deps sktime: only its "
            "bundled data files are read)"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / problem
    if not folder.is_dir():
        raise UserError(f"sktime's data folder {problem} is missing from {folder.parent}")
    return folder


def _sktime_series(name: str) -> Dataset:
    """A built-in series source: sktime's TRAIN and TEST files together (micropeft makes
    its own split), every case resampled to the longest one's length, scaled per channel
    over the whole problem (before any class subset is taken: one sensor, one scaling)."""
    problem, keep = SKTIME_SOURCES[name]
    folder = _sktime_folder(problem)
    cases: list[np.ndarray] = []
    labels: list[str] = []
    classes: list[str] = []
    for part in ("TRAIN", "TEST"):
        file = folder / f"{problem}_{part}.ts"
        if not file.is_file():
            raise UserError(f"sktime's data file {file.name} is missing from {folder}")
        more, more_labels, classes = read_ts(file)
        cases += more
        labels += more_labels
    length = max(c.shape[1] for c in cases)
    x = np.stack([resample_series(c, length).T for c in cases])[:, :, None, :]
    x = _series01(x, name)
    names = [c for c in classes if keep is None or c in keep]
    index = {c: i for i, c in enumerate(names)}
    pick = np.asarray([label in index for label in labels])
    y = np.asarray([index[label] for label in labels if label in index], np.int64)
    return Dataset(x[pick], y, names, name)


def _folder(path: Path) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise UserError(f"{path}: needs one sub-folder per class (found {len(classes)})")
    images, labels = [], []
    size = None
    for label, folder in enumerate(classes):
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
        for file in files:
            try:
                with Image.open(file) as im:
                    rgb = np.asarray(im.convert("RGB"), np.float32) / 255.0
            except (UnidentifiedImageError, OSError) as error:
                raise UserError(f"{file}: not a readable image ({error})") from error
            # Folders mix sizes: bring every image to the first one's size now.
            if size is None:
                size = rgb.shape[:2]
            if rgb.shape[:2] != size:
                rgb = _resize(rgb[None], size[0], size[1])[0]
            images.append(rgb)
            labels.append(label)
    x = np.stack(images)
    if all(np.allclose(x[..., 0], x[..., k]) for k in (1, 2)):
        x = x[..., :1]
    return Dataset(x, np.asarray(labels, np.int64), [c.name for c in classes], path.name)


def _tfds(spec: str) -> Dataset:
    parts = spec.split(":")
    name = parts[1] if len(parts) > 1 else ""
    split = parts[2] if len(parts) > 2 else "train"
    if not name:
        raise UserError("tfds source needs a name: tfds:NAME[:SPLIT]")
    try:
        import tensorflow_datasets as tfds  # type: ignore[import-not-found]
    except ImportError as error:
        raise UserError(
            "tfds sources need the tensorflow-datasets package: pip install tensorflow-datasets"
        ) from error
    try:
        data, info = tfds.load(name, split=split, as_supervised=True, batch_size=-1, with_info=True)
        x, y = tfds.as_numpy(data)
    except Exception as error:  # noqa: BLE001 - download/build failures come in many types
        raise UserError(
            f"TensorFlow Datasets could not load {name}:{split} ({type(error).__name__}); "
            "it downloads on first use: connect to the internet or use a local source"
        ) from error
    names = list(info.features["label"].names)
    return Dataset(_to_nhwc01(x, spec), np.asarray(y, np.int64), names, name)


def prepared_dataset_file(source: str) -> Path | None:
    """prepare-dataset's dataset.bin when `source` is that file or the folder holding it."""
    path = Path(source)
    if path.is_dir() and (path / "dataset.bin").is_file():
        return path / "dataset.bin"
    if path.is_file() and path.suffix == ".bin":
        return path
    return None


def load_source(source: str, seed: int = 0, series: bool = False) -> Dataset:
    """A dataset from a built-in name, a .npz, a class-per-folder tree or tfds:NAME.

    `series`: the data is for a (T, 1, C) model, so a .npz's 3-D `x` is (N, T, C)
    series rather than (N, H, W) gray images.
    """
    if source in SKTIME_SOURCES:
        return _sktime_series(source)
    if source == "animal-mnist":
        return _animal_mnist()
    if source == "digits":
        return _digits()
    if source == "skimage-patches":
        return _skimage_patches(seed)
    if source.startswith("tfds:"):
        return _tfds(source)
    path = Path(source)
    if path.is_dir():
        return _folder(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise UserError(f"dataset file not found: {source}")
        return _npz(path, series)
    raise UserError(
        f"unknown dataset source {source!r}: use {', '.join(BUILTIN)}, a .npz file, "
        "a folder with one sub-folder per class, or tfds:NAME"
    )


def _resize(x: np.ndarray, h: int, w: int) -> np.ndarray:
    if x.shape[1:3] == (h, w):
        return x
    from skimage.transform import resize

    shrinking = x.shape[1] > h or x.shape[2] > w
    out = resize(
        x, (x.shape[0], h, w, x.shape[3]), order=1, anti_aliasing=shrinking, preserve_range=True
    )
    return out.astype(np.float32)


def fit_images(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Fit data in [0, 1] to a model input `shape` (h, w, c): images (N, H, W, C) resized,
    their channels converted; series (N, T, 1, C) resampled in time, laid out as the
    model's (T, 1, C) or (1, T, C)."""
    h, w, c = shape
    have = x.shape[-1]
    if is_series(shape) != is_series(x.shape[1:]):
        if is_series(shape):
            raise UserError(
                f"the model input {h}x{w}x{c} is a (T, 1, C) series but the dataset holds "
                f"images {'x'.join(map(str, x.shape[1:]))}: use a series source "
                "(japanese-vowels, basic-motions, a .npz of (N, T, C))"
            )
        raise UserError(
            f"the dataset holds (T, 1, C) series {'x'.join(map(str, x.shape[1:]))} but the "
            f"model input {h}x{w}x{c} is an image"
        )
    if is_series(shape):
        if have != c:
            raise UserError(
                f"the dataset has {have} channels per time step but the model input "
                f"{h}x{w}x{c} has {c}: series channels are never converted"
            )
        length = max(h, w)
        out = _resize(x, length, 1)
        return np.clip(out if w == 1 else out.transpose(0, 2, 1, 3), 0.0, 1.0).astype(np.float32)
    if c not in (1, 3):
        raise UserError(
            f"the model input has {c} channels; images convert to 1 (gray) or 3 (RGB), and "
            "a sensor model takes any channel count as a (T, 1, C) input"
        )
    if have == 3 and c == 1:
        x = (x @ np.asarray([0.299, 0.587, 0.114], np.float32))[..., None]
    elif have == 1 and c == 3:
        x = np.repeat(x, 3, axis=-1)
    chunks = [_resize(x[i : i + 1024], h, w) for i in range(0, len(x), 1024)]
    return np.clip(np.concatenate(chunks) if chunks else x, 0.0, 1.0).astype(np.float32)


def to_model_range(x01: np.ndarray, input_range: tuple[float, float]) -> np.ndarray:
    low, high = input_range
    return (x01 * (high - low) + low).astype(np.float32)


def quantize(x01: np.ndarray, input_range: tuple[float, float], quant: QuantParams) -> np.ndarray:
    """[0, 1] images -> the model's input range -> int8 with its scale and zero point."""
    real = to_model_range(x01, input_range)
    q = np.round(real / quant.scale) + quant.zero_point
    return np.clip(q, -128, 127).astype(np.int8)


# The test share of a raw source, for prepare-dataset and for bench's --dataset alike: with the
# same seed both hold out the same samples, so a bench figure is measured on prepare-dataset's
# test set.
TEST_FRACTION = 0.3


def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (train, test) index arrays, optionally over `limit` samples."""
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise UserError(f"test fraction must lie in (0, 1), not {test_fraction}")
    index = np.arange(len(y))
    classes = np.unique(y)
    if limit is not None:
        if limit < 2 * len(classes):
            raise UserError(f"--limit {limit} is too small for {len(classes)} classes")
        if limit < len(y):
            index, _ = train_test_split(index, train_size=limit, stratify=y, random_state=seed)
    counts = np.bincount(y[index])
    if counts[counts > 0].min() < 2:
        raise UserError("every class needs at least 2 samples for a train/test split")
    n_test = max(int(round(len(index) * test_fraction)), len(classes))
    if n_test >= len(index) - len(classes) + 1:
        raise UserError(f"too few samples ({len(index)}) for a test split of {test_fraction}")
    train, test = train_test_split(index, test_size=n_test, stratify=y[index], random_state=seed)
    return np.sort(train), np.sort(test)


def dataset_blob(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    quant: QuantParams,
    num_classes: int,
) -> bytes:
    """The dataset partition image (docs/formats.md, "Dataset blob")."""
    if x_train.dtype != np.int8 or x_test.dtype != np.int8:
        raise ValueError("samples must be int8")
    h, w, c = x_train.shape[1:]
    if x_test.shape[1:] != (h, w, c):
        raise ValueError("train and test shapes differ")
    low, high = formats.LIMIT["MIN_CLASSES"], formats.LIMIT["MAX_CLASSES"]
    if not low <= num_classes <= high:
        raise UserError(f"the dataset blob holds {low}..{high} classes, not {num_classes}")
    labels = np.concatenate([y_train, y_test])
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserError(f"labels must lie in 0..{num_classes - 1}")
    sample_bytes = h * w * c
    count = len(x_train) + len(x_test)
    samples_offset = HEADER_SIZE
    labels_offset = samples_offset + count * sample_bytes
    total = labels_offset + count
    total += (-total) % 4
    blob = bytearray(total)
    formats.DATASET.pack_header(
        blob,
        total_length=total,
        n_train=len(x_train),
        n_test=len(x_test),
        height=h,
        width=w,
        channels=c,
        classes=num_classes,
        input_scale=float(quant.scale),
        input_zero_point=int(quant.zero_point),
        sample_bytes=sample_bytes,
        samples_offset=samples_offset,
        labels_offset=labels_offset,
    )
    samples = np.concatenate([x_train, x_test]).reshape(-1)
    blob[samples_offset:labels_offset] = samples.tobytes()
    blob[labels_offset : labels_offset + count] = labels.astype(np.uint8).tobytes()
    return formats.DATASET.seal(blob)


@dataclass
class DatasetBlob:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    quant: QuantParams
    num_classes: int


def parse_dataset_blob(blob: bytes) -> DatasetBlob:
    """Read and check a dataset blob (the inverse of dataset_blob)."""
    if len(blob) < HEADER_SIZE:
        raise UserError("dataset blob too short for its header")
    head = formats.DATASET_HEADER.unpack(blob)
    magic, version, total = head["magic"], head["version"], head["total_length"]
    n_train, n_test, classes = head["n_train"], head["n_test"], head["classes"]
    h, w, c = head["height"], head["width"], head["channels"]
    sample_bytes, s_off, l_off = head["sample_bytes"], head["samples_offset"], head["labels_offset"]
    scale, zero = head["input_scale"], head["input_zero_point"]
    if magic != DATASET_MAGIC:
        raise UserError(f"not a dataset blob (magic {magic!r})")
    if version != DATASET_VERSION or head["header_size"] != HEADER_SIZE:
        raise UserError(f"dataset blob version {version} is not supported")
    crc = zlib.crc32(blob[formats.CRC_START : total]) & 0xFFFFFFFF
    if total > len(blob) or crc != head["crc"]:
        raise UserError("dataset blob is truncated or corrupt (CRC mismatch)")
    count = n_train + n_test
    if (
        sample_bytes != h * w * c
        or s_off < HEADER_SIZE
        or l_off < s_off + count * sample_bytes
        or l_off + count > total
        or not formats.LIMIT["MIN_CLASSES"] <= classes <= formats.LIMIT["MAX_CLASSES"]
    ):
        raise UserError("dataset blob header is inconsistent (shape, counts or offsets)")
    x = np.frombuffer(blob, np.int8, count * sample_bytes, s_off).reshape(count, h, w, c)
    y = np.frombuffer(blob, np.uint8, count, l_off).astype(np.int64)
    return DatasetBlob(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:], QuantParams(scale, zero), classes
    )


def check_against_model(dataset: Dataset, num_classes: int) -> None:
    """Class-count agreement between a dataset and a model's output."""
    if len(dataset.y) == 0:
        raise UserError(f"dataset {dataset.name} has no samples")
    if dataset.num_classes < 2:
        raise UserError(
            f"dataset {dataset.name} has {dataset.num_classes} class: fine-tuning needs at least 2"
        )
    used = int(dataset.y.max()) + 1 if len(dataset.y) else 0
    if dataset.num_classes != num_classes or used > num_classes:
        raise UserError(
            f"dataset {dataset.name} has {dataset.num_classes} classes but the model outputs "
            f"{num_classes}: prepare the model with --num-classes {dataset.num_classes}"
        )


def representative(source: str, shape: tuple[int, int, int], count: int, seed: int) -> np.ndarray:
    """`count` samples of a source fitted to `shape`, in [0, 1], for calibration."""
    data = load_source(source, seed, series=is_series(shape))
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(data.x), size=min(count, len(data.x)), replace=False)
    return fit_images(data.x[np.sort(pick)], shape)


def summary(dataset: Dataset, train: Any, test: Any) -> dict[str, Any]:
    return {
        "source": dataset.name,
        "classes": dataset.class_names,
        "train": int(len(train)),
        "test": int(len(test)),
    }
