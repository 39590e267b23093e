"""``actdb dream``: feature visualization by gradient ascent on one channel.

Two recipes:

- ``seed`` reproduces the original write-up's procedure exactly, quirks included: a uniform
  random uint8 start (values 0..254, ``np.random.RandomState(seed)``, the legacy generator the
  original's ``np.random.randint`` uses), the model's ``preprocess_input`` (for VGG: BGR, mean
  subtraction, no scaling), the gradient divided by its standard deviation, a fixed step, a clip
  to [-1, 1] after every step, and the result written as ``uint8(255 * (x + 1) / 2)`` without
  converting BGR back to RGB. The optimisation therefore lives in a tiny range around the mean
  pixel, and the saved PNG is a contrast-stretched, channel-swapped view of it. It runs
  eagerly, as the original did: TensorFlow's graph mode rounds a little differently, and the
  contrast stretch makes that visible.
- ``improved`` (default) is what a careful practitioner uses today: the image is parameterised
  in a decorrelated colour space and a 1/f-scaled Fourier basis, squashed into the valid pixel
  range by a sigmoid, optimised with Adam under random jitter and scaling (transformation
  robustness), and saved as proper RGB.

Objectives: ``channel`` (mean of the channel over all positions, as in the study) or
``neuron`` (the channel at the centre position).

For example (the Python face of ``actdb dream``)::

    res = actdb.dream("node4.png", channel=4, recipe="seed", steps=100)
    res.final_activation
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from actdb.errors import UsageError

RECIPES = ("seed", "improved")
OBJECTIVES = ("channel", "neuron")

# Colour correlation (sqrt of the ImageNet RGB covariance), as used by Lucid/Lucent to
# decorrelate colour channels; normalised by its largest column norm.
_COLOR_CORR = np.array([[0.26, 0.09, 0.02],
                        [0.27, 0.00, -0.05],
                        [0.27, -0.09, 0.03]], dtype=np.float32)
_COLOR_CORR /= np.max(np.linalg.norm(_COLOR_CORR, axis=0))


@dataclass(frozen=True)
class DreamConfig:
    """Everything ``actdb dream`` takes."""

    model: str = "vgg19"
    layer: str | None = None
    channel: int = 4
    weights: str = "imagenet"
    size: int = 224
    steps: int | None = None  # seed: 100, improved: 256
    step_size: float | None = None  # seed: 0.1, improved: Adam learning rate 0.05
    seed: int = 0
    recipe: str = "improved"
    objective: str = "channel"
    precision: str = "fp32"


@dataclass
class DreamResult:
    """The saved image and how the optimisation went."""

    image: str
    sidecar: str
    config: dict
    model_fingerprint: str
    objective_per_step: list[float] = field(default_factory=list)
    start_activation: float = 0.0
    final_activation: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _resolved(cfg: DreamConfig) -> DreamConfig:
    from dataclasses import replace

    from actdb.models.registry import get_spec

    if cfg.steps is not None and cfg.steps < 1:
        raise UsageError(f"steps must be at least 1, not {cfg.steps}")
    if cfg.recipe not in RECIPES:
        raise UsageError(f"unknown recipe {cfg.recipe!r}; use one of {', '.join(RECIPES)}")
    if cfg.objective not in OBJECTIVES:
        raise UsageError(f"unknown objective {cfg.objective!r}; use one of "
                         f"{', '.join(OBJECTIVES)}")
    seed_recipe = cfg.recipe == "seed"
    return replace(
        cfg, model=get_spec(cfg.model).name, layer=cfg.layer or get_spec(cfg.model).default_layer,
        steps=cfg.steps if cfg.steps is not None else (100 if seed_recipe else 256),
        step_size=cfg.step_size if cfg.step_size is not None else (0.1 if seed_recipe else 0.05))


def image_format(output: str | Path) -> str:
    """The Pillow format an output file's name asks for (``x.png`` -> PNG).

    >>> image_format("node4.jpg")
    'JPEG'
    """
    from PIL import Image

    fmt = Image.registered_extensions().get(Path(output).suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot tell an image format from {Path(output).name!r}; "
                         "name the output .png, .jpg, .webp, ...")
    return fmt


def _objective_fn(cfg: DreamConfig, dim: int):
    import tensorflow as tf

    if not 0 <= cfg.channel < dim:
        raise UsageError(f"channel {cfg.channel} out of range; {cfg.layer} has {dim} channels")
    ch = cfg.channel

    def objective(act):
        if cfg.objective == "neuron":
            h, w = act.shape[1] // 2, act.shape[2] // 2
            return tf.reduce_mean(act[:, h, w, ch])
        return tf.reduce_mean(act[:, :, :, ch])

    return objective


def seed_start(size: int, seed: int) -> np.ndarray:
    """The original's start: uniform random uint8 in 0..254 (``randint(0, 255)``)."""
    return np.random.RandomState(seed).randint(0, 255, size=(size, size, 3), dtype=np.uint8)


def _run_seed(emb, cfg, objective, progress):
    import tensorflow as tf

    img = tf.convert_to_tensor(emb._preprocess(seed_start(cfg.size, cfg.seed).astype(np.float32)))
    start = float(objective(emb.features(img[None], training=False)))

    def step(img):  # eager, as the original ran: graph mode rounds differently
        with tf.GradientTape() as tape:
            tape.watch(img)
            loss = objective(emb.features(tf.expand_dims(img, 0), training=False))
        g = tape.gradient(loss, img)
        g /= tf.math.reduce_std(g)
        return loss, tf.clip_by_value(img + g * cfg.step_size, -1, 1)

    values = []
    for i in range(cfg.steps):
        loss, img = step(img)
        values.append(float(loss))
        if progress:
            progress(i + 1, cfg.steps, values[-1])
    # the original maps back with a contrast stretch and keeps BGR order
    out = tf.cast(255 * (img + 1.0) / 2.0, tf.uint8).numpy()
    return out, values, start


def _fourier_scale(size: int) -> np.ndarray:
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    freqs = np.sqrt(fx**2 + fy**2)
    # 1/f decay, times sqrt(h * w) to undo irfft2d's 1/(h * w) normalisation (as in Lucid)
    return (size / np.maximum(freqs, 1.0 / size)).astype(np.float32)


def _run_improved(emb, cfg, objective, progress):
    import tensorflow as tf

    size = cfg.size
    rng = np.random.default_rng(cfg.seed)
    shape = (3, size, size // 2 + 1)
    spec_re = tf.Variable(rng.normal(0, 0.01, shape).astype(np.float32))
    spec_im = tf.Variable(rng.normal(0, 0.01, shape).astype(np.float32))
    scale = tf.constant(_fourier_scale(size))
    corr = tf.constant(_COLOR_CORR.T)
    tf_rng = tf.random.Generator.from_seed(cfg.seed)

    def to_rgb():
        spec = tf.complex(spec_re * scale, spec_im * scale)
        x = tf.signal.irfft2d(spec, fft_length=[size, size])  # (3, size, size)
        x = tf.transpose(x, [1, 2, 0]) / 4.0  # Lucid's constant: keeps the start near grey
        x = tf.tensordot(x, corr, 1)
        return tf.sigmoid(x)  # valid pixels, [0, 1]

    def robust(x):  # transformation robustness: pad, jitter, scale, jitter
        x = tf.pad(x[None], [[0, 0], [12, 12], [12, 12], [0, 0]], mode="REFLECT")
        x = tf.image.random_crop(x, [1, size + 16, size + 16, 3], seed=None)
        s = tf_rng.uniform([], 0.9, 1.1)
        new = tf.cast(tf.round(s * (size + 16)), tf.int32)
        x = tf.image.resize(x, [new, new])
        x = tf.image.resize_with_crop_or_pad(x, size + 8, size + 8)
        return tf.image.random_crop(x, [1, size, size, 3])

    def score(x01):
        return objective(emb.features(emb_preprocess(x01 * 255.0), training=False))

    def emb_preprocess(x):
        # keras' preprocess_input works on tensors too (RGB in, model's convention out)
        return emb._preprocess(x)

    opt = tf.keras.optimizers.Adam(cfg.step_size)
    start = float(score(to_rgb()[None]))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = -score(robust(to_rgb()))
        grads = tape.gradient(loss, [spec_re, spec_im])
        opt.apply_gradients(zip(grads, [spec_re, spec_im], strict=True))
        return -loss

    values = []
    for i in range(cfg.steps):
        values.append(float(step()))
        if progress:
            progress(i + 1, cfg.steps, values[-1])
    out = np.clip(np.round(to_rgb().numpy() * 255.0), 0, 255).astype(np.uint8)
    return out, values, start


def dream(cfg: DreamConfig, output: str | Path,
          progress: Callable[[int, int, float], None] | None = None) -> DreamResult:
    """Optimise an image for ``cfg.channel`` of ``cfg.layer``; write it (in the format its
    name asks for) and a JSON sidecar."""
    from PIL import Image

    from actdb.models.embed import EmbedConfig, Embedder

    cfg = _resolved(cfg)
    fmt = image_format(output)
    from actdb.models.embed import backend

    if backend() != "tensorflow":
        raise UsageError(f"dream runs on Keras' TensorFlow backend; KERAS_BACKEND is "
                         f"{backend()}: run it with KERAS_BACKEND=tensorflow")
    emb = Embedder(EmbedConfig(model=cfg.model, layer=cfg.layer, weights=cfg.weights,
                               image_size=cfg.size, precision=cfg.precision))
    objective = _objective_fn(cfg, emb.dim)
    run = _run_seed if cfg.recipe == "seed" else _run_improved
    out, values, start = run(emb, cfg, objective, progress)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out, "RGB").save(output, format=fmt)
    # the saved file read back and embedded as any query image would be
    reread = np.asarray(Image.open(output).convert("RGB"), np.float32)[None]
    final = float(objective(emb.features(emb._preprocess(reread.copy()), training=False)))
    sidecar = output.with_suffix(".json")
    res = DreamResult(str(output), str(sidecar), asdict(cfg), emb.fingerprint, values,
                      start, final)
    sidecar.write_text(json.dumps({
        "image": output.name, "config": res.config, "model_fingerprint": res.model_fingerprint,
        "weights_sha256": emb.weights_sha256, "objective_per_step": values,
        "start_activation": start, "final_activation_of_saved_image": final,
    }, indent=2) + "\n")
    return res
