"""What every network actdb embeds with shares, whatever its framework (Keras or PyTorch):
its spec, the pools and precisions, the check that images are uint8, decoding then embedding
in batches, and the fingerprint of a recipe. Below ``registry``, ``embed`` and ``torchnet``,
which all read it.

>>> is_torch_model("torchvision:googlenet"), is_torch_model("vgg19")
(True, False)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from actdb import heavy
from actdb.errors import UsageError
from actdb.images import decode_named
from actdb.options import EmbedConfig

POOLS = ("mean", "max", "cls")
PRECISIONS = ("auto", "fp32", "bf16")
#: How a saved model's inputs are scaled (``keras.applications.imagenet_utils`` modes):
#: caffe (BGR, mean-centred), tf (-1..1), torch (0..1, ImageNet mean and std), none.
PREPROCESS_MODES = ("caffe", "tf", "torch", "none")
#: Model names that PyTorch builds: torchvision's and timm's zoos by name.
TORCH_ZOOS = ("torchvision", "timm")
#: A user's PyTorch model file: TorchScript (``torch.jit.save``) or a ``torch.export`` program.
TORCH_FILES = (".pt", ".pt2")


def is_torch_model(name: str) -> bool:
    """True when ``name`` is a network PyTorch runs: ``torchvision:NAME``, ``timm:NAME`` or a
    ``.pt`` / ``.pt2`` file."""
    return name.split(":", 1)[0].lower() in TORCH_ZOOS or name.lower().endswith(TORCH_FILES)


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A network actdb embeds with: a ``keras.applications`` model, a saved Keras model
    (``name`` is its path), a torchvision or timm model by name, or a PyTorch model file; with
    its preprocessing, native input size and default layer."""

    name: str  # registry name (torchvision:NAME, timm:NAME); a saved model's resolved path
    family: str = ""
    constructor: str = ""  # attribute of keras.applications ("" for a saved model)
    preprocess: str = ""  # submodule of keras.applications, or one of PREPROCESS_MODES
    native_size: int | None = 224  # None: a saved model that takes any size
    default_layer: str | None = None  # None: a saved model's last spatial layer
    framework: str = "keras"  # or "torch"
    #: a torch network's input scaling: 0..255 divided by ``scale``, then (x - mean) / std
    #: per RGB channel (``bgr``: channels reversed first)
    scale: float = 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    bgr: bool = False

    @property
    def saved(self) -> bool:
        """True for a user's model file (Keras or PyTorch)."""
        return not self.constructor

    def preprocess_input(self):
        """Return the Keras model's own ``preprocess_input`` function (a saved model: its
        mode's)."""
        apps = heavy.keras().applications
        if not self.saved:
            return getattr(apps, self.preprocess).preprocess_input
        if self.preprocess == "none":
            return lambda x: x
        mode = self.preprocess
        return lambda x: apps.imagenet_utils.preprocess_input(x, mode=mode)


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def uint8_images(images) -> np.ndarray:
    """``images`` as a uint8 array (UsageError for any other dtype: nothing is rounded)."""
    a = np.asarray(images)
    if a.dtype != np.uint8:
        raise UsageError(f"embed takes uint8 RGB images, not {a.dtype}; embed_files decodes "
                         "image files")
    return a


def embed_decoded(emb, paths: list[str | Path | bytes], batch_size: int = 32,
                  names: list[str] | None = None) -> np.ndarray:
    """Decode images with ``emb``'s size and resize method, then ``emb.embed`` them in
    batches (``emb``: an Embedder, or anything with its ``config``, ``dim`` and ``embed``,
    such as a BatchingEmbedder)."""
    c = emb.config
    arrays = [decode_named(p, c.image_size, c.resize, names[i] if names else None)
              for i, p in enumerate(paths)]
    out = [emb.embed(np.stack(arrays[i : i + batch_size]))
           for i in range(0, len(arrays), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, emb.dim), np.float32)


def model_fingerprint(config: EmbedConfig, weights_sha: str) -> str:
    """sha256 (16 hex digits) of the resolved embedding recipe and the weights' hash."""
    d = asdict(config)
    d.pop("weights")  # the source does not matter, the weights themselves do
    if d["preprocess"] is None:
        d.pop("preprocess")  # registry models: fingerprints as before saved models came
    else:
        d["model"] = "saved"  # a saved model is its weights, wherever its file lies
    d["weights_sha256"] = weights_sha
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def quiet_logger(name: str):
    """The logger ``name`` (and its children) silent for a block, as it was after."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)
