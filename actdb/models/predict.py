"""``actdb predict``: ask several full ImageNet classifiers what they see.

Each model gets its own ``preprocess_input`` (the image is resized to 224 x 224 with the same
decoder ingest uses); class names come from the offline class index, never from Keras'
downloaded JSON.

For example::

    predict(["node4.png"], PredictConfig(models=("vgg19", "resnet50")))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from actdb.errors import UsageError
from actdb.models.registry import MODELS

TOP_SIZE = 224


@dataclass(frozen=True)
class PredictConfig:
    """Models, their weights (``{"vgg19": "random:0"}``; default imagenet) and top-K."""

    models: tuple[str, ...] = ("vgg19", "vgg16", "resnet50")
    weights: dict[str, str] = field(default_factory=dict)
    default_weights: str = "imagenet"
    top: int = 3


def parse_weights_options(values: list[str] | None) -> tuple[str, dict[str, str]]:
    """Weights options as typed: one source for every model, or MODEL=SOURCE per model.

    >>> parse_weights_options(["random:0"])
    ('random:0', {})
    >>> parse_weights_options(["vgg16=f.h5"])
    ('imagenet', {'vgg16': 'f.h5'})
    """
    default, per_model = "imagenet", {}
    for v in values or []:
        name, sep, source = v.partition("=")
        if sep and name.strip().lower() in MODELS:
            per_model[name.strip().lower()] = source
        elif sep and not Path(v).exists():
            raise UsageError(f"weights {v!r}: {name!r} is not a model; use MODEL=SOURCE with "
                             f"one of {', '.join(MODELS)}, or one SOURCE for every model")
        else:
            default = v
    return default, per_model


def predict(images: list, cfg: PredictConfig | None = None) -> list[dict]:
    """Top-K (wnid, name, probability) per image per model, as a list of records."""
    from actdb.images import decode_image
    from actdb.models.classes import class_index
    from actdb.models.registry import get_spec, load_application

    cfg = cfg or PredictConfig()
    if not 1 <= cfg.top <= 1000:
        raise UsageError(f"top must be between 1 and 1000, not {cfg.top}")
    if not cfg.models:
        raise UsageError("name at least one model")
    names = [get_spec(m).name for m in cfg.models]
    stray = sorted(set(cfg.weights) - set(names))
    if stray:
        raise UsageError(f"weights are given for {', '.join(stray)}, which is not among the "
                         f"models to run ({', '.join(names)})")
    for p in images:
        if not isinstance(p, bytes) and not Path(p).is_file():
            raise UsageError(f"image {p} is not a file")
    idx = class_index()
    arrays = [decode_image(p, TOP_SIZE)[0] for p in images]
    batch = np.stack(arrays).astype(np.float32)
    out = []
    for name in cfg.models:
        spec = get_spec(name)
        model = load_application(spec, cfg.weights.get(spec.name, cfg.default_weights),
                                 include_top=True)
        pre = spec.preprocess_input()
        probs = np.concatenate([  # in batches: activations of many images at once are large
            np.asarray(model(pre(batch[i:i + 32].copy()), training=False), np.float64)
            for i in range(0, len(batch), 32)])
        for img, p in zip(images, probs, strict=True):
            top = np.argsort(-p, kind="stable")[: cfg.top]
            out.append({
                "image": str(getattr(img, "name", img)), "model": spec.name,
                "weights": cfg.weights.get(spec.name, cfg.default_weights),
                "sum": float(p.sum()),
                "top": [{"wnid": idx.classes[i].wnid, "class_name": idx.classes[i].name,
                         "probability": float(p[i])} for i in top],
            })
    return out
