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


@dataclass(frozen=True, kw_only=True)
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


def resolved(cfg: DreamConfig) -> DreamConfig:
    """The config with its defaults filled in (model name, layer, steps, step size)."""
    from dataclasses import replace

    from actdb.models.registry import get_spec

    if cfg.size < 32:
        raise UsageError(f"size must be at least 32, not {cfg.size}", param="size")
    if cfg.steps is not None and cfg.steps < 1:
        raise UsageError(f"steps must be at least 1, not {cfg.steps}",
                         param="steps")
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


def _objectives(cfg: DreamConfig, channels: list[int], dim: int):
    """The objective of each image of a batch, each for its own channel: (B, h, w, C) -> (B,).
    Written per image, as a single ``dream`` computes it, so that a batch gives each channel
    what a run of its own gives."""
    import tensorflow as tf

    for ch in channels:
        if not 0 <= ch < dim:
            raise UsageError(f"channel {ch} out of range; {cfg.layer} has {dim} channels")

    def objectives(act):
        act = tf.cast(act, tf.float32)  # bf16 features: reduce in float32
        if cfg.objective == "neuron":
            h, w = act.shape[1] // 2, act.shape[2] // 2
            return tf.stack([tf.reduce_mean(act[i, h, w, ch]) for i, ch in enumerate(channels)])
        return tf.stack([tf.reduce_mean(act[i, :, :, ch]) for i, ch in enumerate(channels)])

    return objectives


def seed_start(size: int, seed: int) -> np.ndarray:
    """The original's start: uniform random uint8 in 0..254 (``randint(0, 255)``)."""
    return np.random.RandomState(seed).randint(0, 255, size=(size, size, 3), dtype=np.uint8)


def _run_seed(emb, cfg, objectives, n: int, progress):
    import tensorflow as tf

    one = emb._preprocess(seed_start(cfg.size, cfg.seed).astype(np.float32))
    imgs = [tf.convert_to_tensor(one) for _ in range(n)]  # every channel from the same start
    start = objectives(emb.features(tf.stack(imgs), training=False)).numpy()

    def step(imgs):  # eager, as the original ran: graph mode rounds differently
        with tf.GradientTape() as tape:
            for img in imgs:
                tape.watch(img)
            values = objectives(emb.features(tf.stack(imgs), training=False))
            loss = tf.reduce_sum(values)
        grads = tape.gradient(loss, imgs)
        return values, [tf.clip_by_value(img + g / tf.math.reduce_std(g) * cfg.step_size, -1, 1)
                        for img, g in zip(imgs, grads, strict=True)]

    values = []
    for i in range(cfg.steps):
        v, imgs = step(imgs)
        values.append(v.numpy())
        if progress:
            progress(i + 1, cfg.steps, float(v.numpy().mean()))
    # the original maps back with a contrast stretch and keeps BGR order
    out = [tf.cast(255 * (img + 1.0) / 2.0, tf.uint8).numpy() for img in imgs]
    return out, np.asarray(values).T, start


def _fourier_scale(size: int) -> np.ndarray:
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    freqs = np.sqrt(fx**2 + fy**2)
    # 1/f decay, times sqrt(h * w) to undo irfft2d's 1/(h * w) normalisation (as in Lucid)
    return (size / np.maximum(freqs, 1.0 / size)).astype(np.float32)


def _run_improved(emb, cfg, objectives, n: int, progress):
    import tensorflow as tf

    size = cfg.size
    rng = np.random.default_rng(cfg.seed)
    shape = (3, size, size // 2 + 1)
    re, im = rng.normal(0, 0.01, shape), rng.normal(0, 0.01, shape)
    # every channel starts from the seed's spectrum and sees the seed's jitter: a channel in a
    # batch gets what a run of its own gets
    spec_re = tf.Variable(np.broadcast_to(re, (n, *shape)).astype(np.float32))
    spec_im = tf.Variable(np.broadcast_to(im, (n, *shape)).astype(np.float32))
    scale = tf.constant(_fourier_scale(size))
    corr = tf.constant(_COLOR_CORR.T)
    tf_rng = tf.random.Generator.from_seed(cfg.seed)

    def to_rgb():
        spec = tf.complex(spec_re * scale, spec_im * scale)
        x = tf.signal.irfft2d(spec, fft_length=[size, size])  # (n, 3, size, size)
        x = tf.transpose(x, [0, 2, 3, 1]) / 4.0  # Lucid's constant: keeps the start near grey
        x = tf.tensordot(x, corr, 1)
        return tf.sigmoid(x)  # valid pixels, [0, 1]

    def crop(x, side):  # a seeded random crop, the same for every image of the batch
        room = tf.shape(x)[1] - side + 1
        oy, ox = tf_rng.uniform([], 0, room, tf.int32), tf_rng.uniform([], 0, room, tf.int32)
        return tf.reshape(x[:, oy:oy + side, ox:ox + side, :], [n, side, side, 3])

    def robust(x):  # transformation robustness: pad, jitter, scale, jitter
        x = tf.pad(x, [[0, 0], [12, 12], [12, 12], [0, 0]], mode="REFLECT")
        x = crop(x, size + 16)
        s = tf_rng.uniform([], 0.9, 1.1)
        new = tf.cast(tf.round(s * (size + 16)), tf.int32)
        x = tf.image.resize(x, [new, new])
        x = tf.image.resize_with_crop_or_pad(x, size + 8, size + 8)
        return crop(x, size)

    def score(x01):
        # keras' preprocess_input works on tensors too (RGB in, model's convention out)
        return objectives(emb.features(emb._preprocess(x01 * 255.0), training=False))

    opt = tf.keras.optimizers.Adam(cfg.step_size)
    start = score(to_rgb()).numpy()

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            values = score(robust(to_rgb()))
            loss = -tf.reduce_sum(values)
        grads = tape.gradient(loss, [spec_re, spec_im])
        opt.apply_gradients(zip(grads, [spec_re, spec_im], strict=True))
        return values

    values = []
    for i in range(cfg.steps):
        v = step().numpy()
        values.append(v)
        if progress:
            progress(i + 1, cfg.steps, float(v.mean()))
    out = np.clip(np.round(to_rgb().numpy() * 255.0), 0, 255).astype(np.uint8)
    return list(out), np.asarray(values).T, start


def dream_embedder(cfg: DreamConfig):
    """The model a dream optimises against (TensorFlow only)."""
    from actdb.models.embed import EmbedConfig, Embedder, backend

    cfg = resolved(cfg)
    if backend() != "tensorflow":
        raise UsageError(f"dream runs on Keras' TensorFlow backend; KERAS_BACKEND is "
                         f"{backend()}: run it with KERAS_BACKEND=tensorflow")
    return Embedder(EmbedConfig(model=cfg.model, layer=cfg.layer, weights=cfg.weights,
                                image_size=cfg.size, precision=cfg.precision))


def dream_batch(cfg: DreamConfig, channels: list[int], outputs: list[str | Path],
                progress: Callable[[int, int, float], None] | None = None, emb=None
                ) -> list[DreamResult]:
    """Optimise one image per channel, all as one batch (each image its own channel's
    objective, so the cost per channel falls with the batch); each channel gets what
    :func:`dream` with the same settings gives it. Writes each image and its JSON sidecar.
    ``emb`` reuses a :func:`dream_embedder` across batches."""
    from dataclasses import replace

    from PIL import Image

    cfg = resolved(cfg)
    if len(channels) != len(outputs) or not channels:
        raise UsageError("give one output per channel, and at least one channel")
    fmts = [image_format(o) for o in outputs]
    emb = emb or dream_embedder(cfg)
    objectives = _objectives(cfg, channels, emb.dim)
    run = _run_seed if cfg.recipe == "seed" else _run_improved
    images, values, start = run(emb, cfg, objectives, len(channels), progress)
    reread = []
    for img, output, fmt in zip(images, outputs, fmts, strict=True):
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, "RGB").save(output, format=fmt)
        # the saved file read back and embedded as any query image would be
        reread.append(np.asarray(Image.open(output).convert("RGB"), np.float32))
    final = objectives(emb.features(emb._preprocess(np.stack(reread)), training=False)).numpy()
    results = []
    for i, (ch, output) in enumerate(zip(channels, outputs, strict=True)):
        output = Path(output)
        c = replace(cfg, channel=int(ch))
        sidecar = output.with_suffix(".json")
        per_step = [float(v) for v in values[i]]
        res = DreamResult(str(output), str(sidecar), asdict(c), emb.fingerprint, per_step,
                          float(start[i]), float(final[i]))
        sidecar.write_text(json.dumps({
            "image": output.name, "config": res.config,
            "model_fingerprint": res.model_fingerprint, "weights_sha256": emb.weights_sha256,
            "objective_per_step": per_step, "start_activation": res.start_activation,
            "final_activation_of_saved_image": res.final_activation,
        }, indent=2) + "\n")
        results.append(res)
    return results


def dream(cfg: DreamConfig, output: str | Path,
          progress: Callable[[int, int, float], None] | None = None) -> DreamResult:
    """Optimise an image for ``cfg.channel`` of ``cfg.layer``; write it (in the format its
    name asks for) and a JSON sidecar."""
    return dream_batch(cfg, [cfg.channel], [output], progress)[0]
