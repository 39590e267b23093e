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
``neuron`` (the channel at the centre position). The parts compose as in lucent:
``param`` (what is optimised), ``transforms`` (robustness), ``objectives`` (what is
maximised); this module runs them. On a PyTorch network (``torchvision:googlenet``...) the same
recipes run in torch (``torch_recipes``), on its NCHW activations.

For example (the Python face of ``actdb dream``)::

    res = actdb.dream("node4.png", channel=4, recipe="seed", steps=100)
    res.final_activation
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from actdb.errors import UsageError
from actdb.featvis.objectives import OBJECTIVES, channel_objectives
from actdb.featvis.param import fourier_image, seed_start
from actdb.featvis.transforms import robustness
from actdb.options import DreamConfig, EmbedConfig

RECIPES = ("seed", "improved")


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

    def _repr_html_(self) -> str:
        from actdb.viz.notebook import dream_html

        return dream_html(self)


def resolved(cfg: DreamConfig) -> DreamConfig:
    """The config with its defaults filled in (model name, layer, steps, step size)."""
    from dataclasses import replace

    from actdb.models.registry import get_spec

    default = EmbedConfig()  # the recipe's defaults, for what neither the call nor a store says
    spec = get_spec(cfg.model or default.model, cfg.preprocess)
    size = cfg.image_size or spec.native_size  # a saved model's: found when it is built
    if size is not None and size < 32:
        raise UsageError(f"image_size must be at least 32, not {size}", param="image_size")
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
        cfg, model=spec.name, layer=cfg.layer or spec.default_layer, image_size=size,
        weights=cfg.weights or default.weights,
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


def _run_seed(emb, cfg, objectives, n: int, progress):
    import tensorflow as tf

    one = emb.preprocess_tensor(seed_start(cfg.image_size, cfg.seed).astype(np.float32))
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


def _run_improved(emb, cfg, objectives, n: int, progress):
    import tensorflow as tf

    # every channel starts from the seed's spectrum and sees the seed's jitter: a channel in a
    # batch gets what a run of its own gets
    variables, to_rgb = fourier_image(n, cfg.image_size, cfg.seed)
    robust = robustness(n, cfg.image_size, cfg.seed)

    def score(x01):  # RGB in [0, 1] -> each image's objective
        return objectives(emb.features(emb.preprocess_tensor(x01 * 255.0), training=False))

    opt = tf.keras.optimizers.Adam(cfg.step_size)
    start = score(to_rgb()).numpy()

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            values = score(robust(to_rgb()))
            loss = -tf.reduce_sum(values)
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables, strict=True))
        return values

    values = []
    for i in range(cfg.steps):
        v = step().numpy()
        values.append(v)
        if progress:
            progress(i + 1, cfg.steps, float(v.mean()))
    out = np.clip(np.round(to_rgb().numpy() * 255.0), 0, 255).astype(np.uint8)
    return list(out), np.asarray(values).T, start


def _final_values(emb, objectives, images: list[np.ndarray]) -> np.ndarray:
    return objectives(emb.features(emb.preprocess_tensor(np.stack(images)),
                                   training=False)).numpy()


#: The recipes on Keras (TensorFlow); ``featvis.torch_recipes`` has them on PyTorch.
KERAS_RECIPES = SimpleNamespace(channel_objectives=channel_objectives, run_seed=_run_seed,
                                run_improved=_run_improved, final_values=_final_values)


def dream_embedder(cfg: DreamConfig):
    """The model a dream optimises against (Keras on TensorFlow, or PyTorch)."""
    from actdb.models.common import is_torch_model
    from actdb.models.embed import Embedder, backend, build_embedder

    cfg = resolved(cfg)
    if is_torch_model(cfg.model):
        return build_embedder(EmbedConfig(model=cfg.model, layer=cfg.layer, weights=cfg.weights,
                                          image_size=cfg.image_size, precision=cfg.precision,
                                          preprocess=cfg.preprocess))
    if backend() != "tensorflow":
        raise UsageError(f"dream runs on Keras' TensorFlow backend; KERAS_BACKEND is "
                         f"{backend()}: run it with KERAS_BACKEND=tensorflow")
    return Embedder(EmbedConfig(model=cfg.model, layer=cfg.layer, weights=cfg.weights,
                                image_size=cfg.image_size, precision=cfg.precision,
                                preprocess=cfg.preprocess))


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
    # a saved model's default layer and input size are found when it is built
    cfg = replace(cfg, layer=emb.config.layer, image_size=emb.config.image_size)
    if emb.runtime == "torch":
        from actdb.featvis import torch_recipes as recipes
    else:
        recipes = KERAS_RECIPES
    objectives = recipes.channel_objectives(cfg.objective, channels, emb.dim, cfg.layer)
    run = recipes.run_seed if cfg.recipe == "seed" else recipes.run_improved
    images, values, start = run(emb, cfg, objectives, len(channels), progress)
    reread = []
    for img, output, fmt in zip(images, outputs, fmts, strict=True):
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, "RGB").save(output, format=fmt)
        # the saved file read back and embedded as any query image would be
        reread.append(np.asarray(Image.open(output).convert("RGB"), np.float32))
    final = recipes.final_values(emb, objectives, reread)
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
