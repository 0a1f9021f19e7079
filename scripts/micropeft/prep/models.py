"""Keras models that micropeft prepares: MobileNet V1/V2, their 1-D versions for sensor
series, and a tiny CNN for tests.

Every builder returns a float Keras model with a fixed batch-1-friendly input
(size x size x channels; a 1-D net: size x 1 x channels, time on the height axis)
and logits (no softmax): the int8 converter keeps the graph as is and the runtime's
loss applies the softmax itself. TensorFlow is imported inside the functions so that
importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from micropeft.errors import UserError
from micropeft.files import write_atomic
from micropeft.prep import datasets

# Keras' MobileNet builders accept these width multipliers for ImageNet weights.
IMAGENET_ALPHAS_V1 = (0.25, 0.5, 0.75, 1.0)
IMAGENET_ALPHAS_V2 = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
IMAGENET_SIZES = (96, 128, 160, 192, 224)


def _check_size(size: int, channels: int, weights: str | None, name: str) -> None:
    if size < 32:
        raise UserError(f"{name}: input size {size} is too small (Keras needs at least 32)")
    if weights is not None and weights != "imagenet":
        raise UserError(f"{name}: unknown weights {weights!r} (use None or 'imagenet')")
    if weights == "imagenet":
        if channels != 3:
            raise UserError(f"{name}: ImageNet weights need 3 input channels, not {channels}")
        if size not in IMAGENET_SIZES:
            raise UserError(
                f"{name}: ImageNet weights exist for input sizes {IMAGENET_SIZES}, not {size}"
            )


def _with_head(base: Any, num_classes: int, name: str) -> Any:
    """GlobalAveragePooling2D + Dense(num_classes) on top of a headless backbone."""
    import tensorflow as tf

    if num_classes < 2:
        raise UserError(f"{name}: need at least 2 classes, got {num_classes}")
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(base.output)
    logits = tf.keras.layers.Dense(num_classes, name="logits")(x)
    return tf.keras.Model(base.input, logits, name=name)


def _load_backbone(builder: Any, name: str, **kwargs: Any) -> Any:
    """Call a keras.applications builder; a failed weight download is a UserError."""
    try:
        return builder(**kwargs)
    except Exception as error:  # noqa: BLE001 - Keras raises many types for a failed download
        if kwargs.get("weights") == "imagenet":
            raise UserError(
                f"{name}: could not get the Keras ImageNet weights ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}); they are downloaded from "
                "the internet on first use: connect, or drop --imagenet to pretrain here"
            ) from error
        raise


def build_mobilenet_v1(
    alpha: float, size: int, num_classes: int, channels: int = 3, weights: str | None = None
) -> Any:
    """MobileNet V1 (width `alpha`) for size x size x channels inputs, `num_classes` logits."""
    return _build_mobilenet("v1", alpha, size, num_classes, channels, weights)


def build_mobilenet_v2(
    alpha: float, size: int, num_classes: int, channels: int = 3, weights: str | None = None
) -> Any:
    """MobileNet V2 (width `alpha`) for size x size x channels inputs, `num_classes` logits."""
    return _build_mobilenet("v2", alpha, size, num_classes, channels, weights)


def _build_mobilenet(
    version: str, alpha: float, size: int, num_classes: int, channels: int, weights: str | None
) -> Any:
    import tensorflow as tf

    application, imagenet_alphas = {
        "v1": (tf.keras.applications.MobileNet, IMAGENET_ALPHAS_V1),
        "v2": (tf.keras.applications.MobileNetV2, IMAGENET_ALPHAS_V2),
    }[version]
    name = f"mobilenet_{version}_{alpha:g}_{size}"
    _check_size(size, channels, weights, name)
    if weights == "imagenet" and alpha not in imagenet_alphas:
        raise UserError(f"{name}: ImageNet weights exist for alpha {imagenet_alphas}")
    base = _load_backbone(
        application,
        name,
        input_shape=(size, size, channels),
        alpha=alpha,
        include_top=False,
        weights=weights,
    )
    return _with_head(base, num_classes, name)


# The 1-D MobileNets: the same blocks as Keras' MobileNet and MobileNetV2 with (k, 1)
# kernels on a (T, 1, C) input. Depthwise convs stride (s, s): TensorFlow's CPU depthwise
# kernel needs equal strides, and on a one-column input the column stride changes nothing.
# (output channels, stride) of MobileNet's 13 depthwise-separable blocks.
_V1_BLOCKS = (
    ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2))
    + ((512, 1),) * 5
    + (
        (1024, 2),
        (1024, 1),
    )
)
# (expansion t, output channels c, repeats n, first stride s) of MobileNetV2's blocks.
_V2_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
SERIES_ARCHS = ("mobilenet_v1_1d", "mobilenet_v2_1d")
MIN_SERIES_LENGTH = 8


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Keras' MobileNetV2 channel rounding: to a multiple of 8, never 10 % below."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, name: str, relu: bool) -> Any:
    import tensorflow as tf

    layers = tf.keras.layers
    x = layers.Conv2D(
        filters, (kernel, 1), strides=(stride, 1), padding="same", use_bias=False, name=name
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def _depthwise_bn(x: Any, stride: int, name: str) -> Any:
    import tensorflow as tf

    layers = tf.keras.layers
    x = layers.DepthwiseConv2D(
        (3, 1), strides=(stride, stride), padding="same", use_bias=False, name=name
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x)


def _check_series(name: str, length: int, channels: int, num_classes: int) -> None:
    if length < MIN_SERIES_LENGTH:
        raise UserError(f"{name}: length {length} is too short (at least {MIN_SERIES_LENGTH})")
    if channels < 1:
        raise UserError(f"{name}: need at least 1 channel, got {channels}")
    if num_classes < 2:
        raise UserError(f"{name}: need at least 2 classes, got {num_classes}")


def build_mobilenet_v1_1d(alpha: float, length: int, num_classes: int, channels: int) -> Any:
    """MobileNet V1 (width `alpha`) with (3, 1) kernels for (length, 1, channels) series."""
    import tensorflow as tf

    name = f"mobilenet_v1_1d_{alpha:g}_{length}"
    _check_series(name, length, channels, num_classes)
    inputs = tf.keras.Input((length, 1, channels), name="input")
    x = _conv_bn(inputs, int(32 * alpha), 3, 2, "conv1", relu=True)
    for i, (filters, stride) in enumerate(_V1_BLOCKS, 1):
        x = _depthwise_bn(x, stride, f"conv_dw_{i}")
        x = _conv_bn(x, int(filters * alpha), 1, 1, f"conv_pw_{i}", relu=True)
    return _with_head(tf.keras.Model(inputs, x), num_classes, name)


def build_mobilenet_v2_1d(alpha: float, length: int, num_classes: int, channels: int) -> Any:
    """MobileNet V2 (width `alpha`) with (3, 1) kernels for (length, 1, channels) series:
    inverted residual blocks (1x1 expansion, depthwise (3, 1), 1x1 linear projection,
    a residual ADD where the shape stays)."""
    import tensorflow as tf

    name = f"mobilenet_v2_1d_{alpha:g}_{length}"
    _check_series(name, length, channels, num_classes)
    inputs = tf.keras.Input((length, 1, channels), name="input")
    x = _conv_bn(inputs, _make_divisible(32 * alpha), 3, 2, "conv1", relu=True)
    block = 0
    for expansion, filters, repeats, first_stride in _V2_BLOCKS:
        out_c = _make_divisible(filters * alpha)
        for k in range(repeats):
            stride = first_stride if k == 0 else 1
            prefix = f"block_{block}"
            y = x
            if expansion != 1:
                y = _conv_bn(y, expansion * int(x.shape[-1]), 1, 1, f"{prefix}_expand", True)
            y = _depthwise_bn(y, stride, f"{prefix}_depthwise")
            y = _conv_bn(y, out_c, 1, 1, f"{prefix}_project", relu=False)
            if stride == 1 and int(x.shape[-1]) == out_c:
                y = tf.keras.layers.Add(name=f"{prefix}_add")([x, y])
            x = y
            block += 1
    last = _make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = _conv_bn(x, last, 1, 1, "conv_last", relu=True)
    return _with_head(tf.keras.Model(inputs, x), num_classes, name)


def input_shape_for(arch: str, size: int, channels: int) -> tuple[int, int, int]:
    """A built-in architecture's (h, w, c): size x size images, or size x 1 series."""
    return (size, 1, channels) if arch in SERIES_ARCHS else (size, size, channels)


def build_tiny_cnn(
    size: int, channels: int, num_classes: int, width: int = 8, seed: int = 0
) -> Any:
    """A few-layer CNN with every layer type of a MobileNet block, for fast tests.

    conv 3x3 stride 2 + ReLU6, depthwise 3x3 + ReLU, pointwise 1x1 + ReLU,
    global average pooling, dense.
    """
    import tensorflow as tf

    if num_classes < 2:
        raise UserError(f"tiny_cnn: need at least 2 classes, got {num_classes}")
    init = tf.keras.initializers.GlorotUniform(seed=seed)
    inputs = tf.keras.Input((size, size, channels), name="input")
    x = tf.keras.layers.Conv2D(
        width, 3, strides=2, padding="same", kernel_initializer=init, name="conv1"
    )(inputs)
    x = tf.keras.layers.ReLU(6.0, name="conv1_relu6")(x)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", depthwise_initializer=init, name="dw1")(
        x
    )
    x = tf.keras.layers.ReLU(name="dw1_relu")(x)
    x = tf.keras.layers.Conv2D(2 * width, 1, kernel_initializer=init, name="pw1")(x)
    x = tf.keras.layers.ReLU(name="pw1_relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    logits = tf.keras.layers.Dense(num_classes, kernel_initializer=init, name="logits")(x)
    return tf.keras.Model(inputs, logits, name=f"tiny_cnn_{size}")


def load_keras_model(path: str) -> Any:
    """A user's Keras model file (.keras / .h5); a bad file is a UserError."""
    from pathlib import Path

    import tensorflow as tf

    file = Path(path)
    if not file.is_file():
        raise UserError(f"model file not found: {path}")
    try:
        return tf.keras.models.load_model(file, compile=False)
    except Exception as error:  # noqa: BLE001 - Keras raises many types for a bad file
        raise UserError(
            f"{path}: not a Keras model Keras can load ({type(error).__name__})"
        ) from error


def input_shape(model: Any) -> tuple[int, int, int]:
    """(h, w, c) of a single-input model: an image (batch, h, w, c), or a Keras Conv1D
    model's series (batch, T, C), which TFLite runs as a (1, T, C) row (its convolutions
    become EXPAND_DIMS + CONV_2D with (1, k) kernels); anything else is a UserError."""
    shape = tuple(model.input_shape)
    if len(shape) not in (3, 4) or any(d is None for d in shape[1:]):
        raise UserError(
            f"model {model.name}: expected one image input (batch, h, w, c) or one series "
            f"input (batch, T, C) with fixed sizes, got {shape}"
        )
    if len(shape) == 3:
        return 1, int(shape[1]), int(shape[2])
    return int(shape[1]), int(shape[2]), int(shape[3])


# ---- pretraining on a built-in source dataset, cached ----

# Bumped whenever the pretraining recipe changes, so that no stale cached model is reused.
CACHE_VERSION = 2


def cache_dir() -> Any:
    """Where pretrained models are kept: $MICROPEFT_CACHE or ~/.cache/micropeft."""
    import os
    from pathlib import Path

    return Path(os.environ.get("MICROPEFT_CACHE") or Path.home() / ".cache" / "micropeft")


@dataclass
class PretrainConfig:
    arch: str  # "mobilenet_v1" | "mobilenet_v2" | "tiny_cnn" | one of SERIES_ARCHS
    alpha: float
    size: int
    channels: int
    dataset: str  # a datasets.load_source name
    epochs: int
    seed: int = 0
    imagenet: bool = False
    batch_size: int = 64
    # Recipe (measured on animal-mnist, MobileNetV1 0.25 at 32x32, 12 epochs, 2 loaded cores:
    # 55-70 s): Adam with a 5 % linear warm-up to `lr` then cosine decay to 0; random
    # horizontal flips and shifts of up to `shift` pixels; BatchNorm momentum 0.9 (Keras' 0.99
    # averages over ~100 steps and lags behind weights that still move fast; recomputing the
    # statistics on the un-augmented set after training scored lower). Constant Adam 1e-3, no
    # augmentation, momentum 0.99: 66.9 % held-out accuracy after 10 epochs; this recipe:
    # 79.5 %, and features that transfer better (a logistic regression on digits' pooled
    # features: 65 % against 43 %; without augmentation: 81 % held out but 60 % on digits).
    lr: float = 3e-3
    schedule: str = "cosine"  # "cosine" (warm-up + cosine decay) | "constant"
    augment: bool = True
    shift: int = 3
    bn_momentum: float = 0.9

    @property
    def input_range(self) -> tuple[float, float]:
        """The model's input range: [0, 1], or [-1, 1] with ImageNet weights (Keras'
        MobileNet convention)."""
        return (-1.0, 1.0) if self.imagenet else (0.0, 1.0)

    def key(self) -> str:
        import hashlib
        import json

        text = json.dumps({"v": CACHE_VERSION, **self.__dict__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def build(
    arch: str, alpha: float, size: int, channels: int, num_classes: int, imagenet: bool
) -> Any:
    weights = "imagenet" if imagenet else None
    if arch == "mobilenet_v1":
        return build_mobilenet_v1(alpha, size, num_classes, channels, weights)
    if arch == "mobilenet_v2":
        return build_mobilenet_v2(alpha, size, num_classes, channels, weights)
    if arch in ("tiny_cnn", *SERIES_ARCHS) and imagenet:
        raise UserError(f"{arch} has no ImageNet weights")
    if arch == "tiny_cnn":
        return build_tiny_cnn(size, channels, num_classes)
    if arch == "mobilenet_v1_1d":
        return build_mobilenet_v1_1d(alpha, size, num_classes, channels)
    if arch == "mobilenet_v2_1d":
        return build_mobilenet_v2_1d(alpha, size, num_classes, channels)
    raise UserError(
        f"unknown architecture {arch!r} (mobilenet_v1, mobilenet_v2, tiny_cnn, "
        f"{', '.join(SERIES_ARCHS)})"
    )


def pretrained(
    cfg: PretrainConfig, use_cache: bool = True, verbose: int = 1, progress: bool = False
) -> tuple[Any, dict]:
    """A model trained on cfg.dataset (loaded from the cache when present) and its metrics.

    Images are scaled to [0, 1] ([-1, 1] with ImageNet weights, the Keras
    MobileNet convention); the metrics record that input range. `progress`: a bar
    over the epochs with each epoch's loss and accuracy (for callers with verbose=0).
    """
    import json

    import numpy as np
    import tensorflow as tf
    from tqdm import tqdm

    folder = cache_dir() / f"{cfg.arch}-{cfg.key()}"
    model_file = folder / "model.keras"
    meta_file = folder / "meta.json"
    if use_cache and model_file.is_file() and meta_file.is_file():
        if verbose:
            print(f"pretrained model from the cache: {model_file}")
        return tf.keras.models.load_model(model_file, compile=False), json.loads(
            meta_file.read_text()
        )

    shape = input_shape_for(cfg.arch, cfg.size, cfg.channels)
    data = datasets.load_source(cfg.dataset, cfg.seed, series=datasets.is_series(shape))
    input_range = cfg.input_range
    x = datasets.to_model_range(datasets.fit_images(data.x, shape), input_range)
    train, test = datasets.stratified_split(data.y, 0.1, cfg.seed)
    tf.keras.utils.set_random_seed(cfg.seed)
    model = build(cfg.arch, cfg.alpha, cfg.size, cfg.channels, data.num_classes, cfg.imagenet)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = cfg.bn_momentum
    model.compile(
        optimizer=tf.keras.optimizers.Adam(_learning_rate(cfg, len(train))),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    if verbose:
        print(
            f"pretraining {model.name} on {data.name} ({len(train)} samples, {cfg.epochs} epochs); "
            f"cached afterwards in {folder}"
        )
    rng = np.random.default_rng(cfg.seed)
    bar = tqdm(
        range(cfg.epochs),
        desc=f"pretraining {cfg.arch} on {data.name}",
        unit="epoch",
        disable=not progress,
    )
    for epoch in bar:
        x_epoch = _augment(x[train], cfg.shift, input_range[0], rng) if cfg.augment else x[train]
        history = model.fit(
            x_epoch,
            data.y[train],
            batch_size=cfg.batch_size,
            initial_epoch=epoch,
            epochs=epoch + 1,
            validation_data=(x[test], data.y[test]) if verbose else None,
            verbose=verbose,
        )
        bar.set_postfix(
            loss=f"{history.history['loss'][-1]:.3f}",
            accuracy=f"{history.history['accuracy'][-1]:.3f}",
        )
    bar.close()
    _, accuracy = model.evaluate(x[test], data.y[test], verbose=0)
    meta = {
        "dataset": data.name,
        "classes": data.class_names,
        "test_accuracy": float(accuracy),
        "input_range": list(input_range),
        "config": cfg.__dict__,
    }
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".model-{np.random.default_rng().integers(1 << 30)}.keras"
    model.save(tmp)
    tmp.replace(model_file)

    write_atomic(meta_file, json.dumps(meta, indent=2))
    return model, meta


def _learning_rate(cfg: PretrainConfig, samples: int) -> Any:
    """Adam's learning rate: constant, or a 5 % linear warm-up then cosine decay to 0."""
    import tensorflow as tf

    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule != "cosine":
        raise UserError(f"unknown learning-rate schedule {cfg.schedule!r} (cosine, constant)")
    steps = max(1, cfg.epochs * -(-samples // cfg.batch_size))
    warmup = max(1, steps // 20)
    return tf.keras.optimizers.schedules.CosineDecay(
        0.0, max(1, steps - warmup), warmup_target=cfg.lr, warmup_steps=warmup
    )


def _augment(x: Any, shift: int, fill: float, rng: Any) -> Any:
    """Random horizontal flips and shifts of up to `shift` pixels (black fill), NHWC;
    series (N, T, 1, C): shifts in time only, the edge values repeated (a sensor's
    signal goes on; flipping time would make another motion)."""
    import numpy as np

    n, h, w = x.shape[:3]
    if datasets.is_series(x.shape[1:]):
        if shift <= 0:
            return x
        padded = np.pad(x, ((0, 0), (shift, shift), (0, 0), (0, 0)), mode="edge")
        dt = rng.integers(0, 2 * shift + 1, n)
        return np.stack([padded[i, dt[i] : dt[i] + h] for i in range(n)])
    flip = rng.random(n) < 0.5
    out = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
    if shift <= 0:
        return out
    padded = np.pad(out, ((0, 0), (shift, shift), (shift, shift), (0, 0)), constant_values=fill)
    dy = rng.integers(0, 2 * shift + 1, n)
    dx = rng.integers(0, 2 * shift + 1, n)
    for i in range(n):
        out[i] = padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
    return out


def replace_head(model: Any, num_classes: int, seed: int = 0) -> Any:
    """The same backbone with a fresh Dense(num_classes) on the layer before the head."""
    import tensorflow as tf

    if num_classes < 2:
        raise UserError(f"need at least 2 classes, got {num_classes}")
    features = model.layers[-2].output
    init = tf.keras.initializers.GlorotUniform(seed=seed)
    logits = tf.keras.layers.Dense(num_classes, kernel_initializer=init, name="logits_new")(
        features
    )
    return tf.keras.Model(model.input, logits, name=model.name)
