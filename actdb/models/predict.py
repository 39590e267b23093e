"""``actdb predict``: ask several full ImageNet classifiers what they see.

Each model gets its own ``preprocess_input`` (the image is resized to 224 x 224 with the same
decoder ingest uses); class names come from the offline class index, never from Keras'
downloaded JSON.

>>> predict(["node4.png"], PredictConfig(models=("vgg19", "resnet50")))   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from actdb.errors import UsageError

TOP_SIZE = 224


@dataclass(frozen=True)
class PredictConfig:
    """Models, their weights (``{"vgg19": "random:0"}``; default imagenet) and top-K."""

    models: tuple[str, ...] = ("vgg19", "vgg16", "resnet50")
    weights: dict[str, str] = field(default_factory=dict)
    default_weights: str = "imagenet"
    top: int = 3


def parse_weights_options(values: list[str] | None) -> tuple[str, dict[str, str]]:
    """``["random:0"]`` -> ("random:0", {}); ``["vgg16=f.h5"]`` -> ("imagenet", {vgg16: f.h5})."""
    default, per_model = "imagenet", {}
    for v in values or []:
        name, sep, source = v.partition("=")
        if sep and not name.startswith("random"):
            per_model[name.strip().lower()] = source
        else:
            default = v
    return default, per_model


def predict(images: list, cfg: PredictConfig | None = None) -> list[dict]:
    """Top-K (wnid, name, probability) per image per model, as a list of records."""
    from actdb.ingest.decode import decode_image
    from actdb.models.classes import class_index
    from actdb.models.registry import get_spec, load_application

    cfg = cfg or PredictConfig()
    if not 1 <= cfg.top <= 1000:
        raise UsageError("--top must be between 1 and 1000")
    idx = class_index()
    arrays = [decode_image(p, TOP_SIZE)[0] for p in images]
    batch = np.stack(arrays).astype(np.float32)
    out = []
    for name in cfg.models:
        spec = get_spec(name)
        model = load_application(spec, cfg.weights.get(spec.name, cfg.default_weights),
                                 include_top=True)
        probs = np.asarray(model(spec.preprocess_input()(batch.copy()), training=False),
                           dtype=np.float64)
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
