"""``actdb predict``: ask several full ImageNet classifiers what they see.

Each model gets its own ``preprocess_input`` (a torchvision or timm model: its mean and std)
at its own native input size (the image is resized with the same decoder ingest uses: 224 x
224 for VGG, 299 for Inception); class names come from the offline class index, never from
Keras' downloaded JSON (torchvision's and timm's ImageNet-1k heads count the classes in the
same order).

For example::

    predict(["node4.png"], PredictConfig(models=("vgg19", "resnet50")))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from actdb.errors import UsageError
from actdb.models.common import is_torch_model
from actdb.models.registry import find_spec


def _spec(name: str):
    """A Keras registry model, or a torchvision / timm model by name (None: neither)."""
    name = name.strip()
    if ":" in name and is_torch_model(name):
        from actdb.models.torchnet import torch_spec

        return torch_spec(name)
    return find_spec(name)


@dataclass(frozen=True, kw_only=True)
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
        if sep and (spec := _spec(name)):
            per_model[spec.name] = source
        elif sep and not Path(v).exists():
            raise UsageError(f"weights {v!r}: {name!r} is not a model; use MODEL=SOURCE with "
                             "a registry model (`actdb layers` lists them), or one SOURCE for "
                             "every model",
                             param="weights")
        else:
            default = v
    return default, per_model


def classifier(name: str):
    """The registry, torchvision or timm model whose full ImageNet classifier ``predict``
    runs."""
    spec = _spec(name)
    if spec is None:
        raise UsageError(f"unknown model {name!r} for predict, which runs the ImageNet "
                         "classifiers of the registry models (`actdb layers` lists them), "
                         "torchvision:NAME and timm:NAME", param="models")
    return spec


class Predictor:
    """Full classifiers, each built once on first use, for many calls (an atlas asks of
    hundreds of pictures). ``predict`` is one call of a fresh Predictor."""

    def __init__(self, cfg: PredictConfig | None = None):
        from dataclasses import replace

        cfg = cfg or PredictConfig()
        if not 1 <= cfg.top <= 1000:
            raise UsageError(f"top must be between 1 and 1000, not {cfg.top}",
                             param="top")
        if not cfg.models:
            raise UsageError("name at least one model")
        names = [classifier(m).name for m in cfg.models]
        weights = {getattr(_spec(k), "name", k): v for k, v in cfg.weights.items()}
        cfg = replace(cfg, models=tuple(names), weights=weights)
        stray = sorted(set(weights) - set(names))
        if stray:
            raise UsageError(f"weights are given for {', '.join(stray)}, which is not among "
                             f"the models to run ({', '.join(names)})", param="weights")
        self.cfg = cfg
        self._models: dict[str, object] = {}

    def _model(self, spec):
        """The built classifier: probabilities of a float32 RGB batch in 0..255."""
        if spec.name not in self._models:
            weights = self.cfg.weights.get(spec.name, self.cfg.default_weights)
            if spec.framework == "torch":
                from actdb.models.torchnet import classifier as torch_classifier

                self._models[spec.name] = torch_classifier(spec, weights)
            else:
                from actdb.models.registry import load_application

                model = load_application(spec, weights, include_top=True)
                pre = spec.preprocess_input()
                self._models[spec.name] = lambda x: np.asarray(
                    model(pre(x.copy()), training=False), np.float64)
        return self._models[spec.name]

    def __call__(self, images: list) -> list[dict]:
        """Top-K (wnid, name, probability) per image per model, as a list of records."""
        from actdb.images import decode_named
        from actdb.models.classes import class_index

        cfg = self.cfg
        for p in images:
            if not isinstance(p, bytes) and not Path(p).is_file():
                raise UsageError(f"image {p} is not a file")
        idx = class_index()
        batches: dict[int, np.ndarray] = {}  # decoded once per input size
        out = []
        for name in cfg.models:
            spec = classifier(name)
            size = spec.native_size
            if size not in batches:
                batches[size] = np.stack([decode_named(p, size, name=getattr(p, "name", None))
                                          for p in images]).astype(np.float32)
            batch = batches[size]
            model = self._model(spec)
            probs = np.concatenate([  # in batches: many images' activations at once are large
                model(batch[i:i + 32]) for i in range(0, len(batch), 32)])
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


def predict(images: list, cfg: PredictConfig | None = None) -> list[dict]:
    """Top-K (wnid, name, probability) per image per model, as a list of records."""
    return Predictor(cfg)(images)
