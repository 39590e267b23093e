"""Turn decoded images into pooled activation vectors.

An :class:`Embedder` is built once per run from an :class:`EmbedConfig`: the truncated Keras
model, its ``preprocess_input``, the pooling, and the compute precision. Ingest and every
query go through :meth:`Embedder.embed`, so a query image is embedded exactly like the data.

>>> emb = Embedder(EmbedConfig(weights="random:0", image_size=32, precision="fp32"))
>>> emb.embed(np.zeros((1, 32, 32, 3), np.uint8)).shape
(1, 512)
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from actdb import heavy
from actdb.errors import StoreMismatch, UsageError
from actdb.images import RESIZE_METHODS, decode_image
from actdb.models.registry import get_spec, load_application, weights_sha256

POOLS = ("mean", "max")
PRECISIONS = ("auto", "fp32", "bf16")
_BUILD_LOCK = threading.Lock()


@dataclass(frozen=True)
class EmbedConfig:
    """How images become vectors. Stored in the manifest; queries reuse it unchanged."""

    model: str = "vgg19"
    layer: str | None = None  # None: the model's default layer
    pool: str = "mean"
    weights: str = "imagenet"
    image_size: int = 224
    resize: str = "squash"
    precision: str = "auto"


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def gpu_available() -> bool:
    heavy.keras()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_precision(precision: str) -> str:
    """``auto`` becomes ``bf16`` on a GPU or a bf16-capable CPU, else ``fp32``.

    See the README (Precision) and bench/RESULTS.md for the measurements behind this.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if (gpu_available() or cpu_has_bf16()) else "fp32"


class Embedder:
    """A built, ready-to-run feature extractor (model up to ``layer``, then pooling)."""

    def __init__(self, config: EmbedConfig):
        keras = heavy.keras()
        import tensorflow as tf

        spec = get_spec(config.model)
        layer = config.layer or spec.default_layer
        if config.pool not in POOLS:
            raise UsageError(f"unknown pool {config.pool!r}; use one of {', '.join(POOLS)}")
        if config.resize not in RESIZE_METHODS:
            raise UsageError(
                f"unknown resize {config.resize!r}; use one of {', '.join(RESIZE_METHODS)}"
            )
        if config.image_size < 32:
            raise UsageError(f"image_size must be at least 32, not {config.image_size}")
        precision = resolve_precision(config.precision)
        self.config = replace(config, model=spec.name, layer=layer, precision=precision)
        self.spec = spec
        with _BUILD_LOCK:
            previous = keras.config.dtype_policy()
            keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bf16" else "float32")
            try:
                base = load_application(
                    spec, config.weights, include_top=False,
                    input_shape=(config.image_size, config.image_size, 3),
                )
            finally:
                keras.config.set_dtype_policy(previous)
        names = [lyr.name for lyr in base.layers]
        if layer not in names:
            raise UsageError(
                f"unknown layer {layer!r} for {spec.name}; valid layers: {', '.join(names[1:])}"
            )
        self.model = keras.Model(base.input, base.get_layer(layer).output)
        out_shape = self.model.output.shape
        if len(out_shape) != 4:
            raise UsageError(f"layer {layer!r} is not a spatial (4-D) layer")
        self.dim = int(out_shape[-1])
        self.weights_sha256 = weights_sha256(self.model)
        self._preprocess = spec.preprocess_input()
        size = config.image_size
        reduce = tf.reduce_mean if config.pool == "mean" else tf.reduce_max

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
        def forward(x):
            act = tf.cast(self.model(x, training=False), tf.float32)
            return reduce(act, axis=[1, 2])

        self._forward = forward

    @property
    def fingerprint(self) -> str:
        """A short hash of everything that decides the vectors (used to key cached queries)."""
        return model_fingerprint(self.config, self.weights_sha256)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Pooled float32 vectors for a (n, size, size, 3) uint8 RGB batch."""
        x = self._preprocess(np.asarray(images, dtype=np.float32).copy())
        return np.asarray(self._forward(x), dtype=np.float32)

    def embed_files(self, paths: list[str | Path | bytes], batch_size: int = 32) -> np.ndarray:
        """Decode and embed image files (or raw bytes) exactly as ingest does."""
        return embed_decoded(self, paths, batch_size)

    embed_bytes = embed_files


def embed_decoded(emb, paths: list[str | Path | bytes], batch_size: int = 32) -> np.ndarray:
    """Decode images with ``emb``'s size and resize method, then ``emb.embed`` them in
    batches."""
    arrays = [decode_image(p, emb.config.image_size, emb.config.resize)[0] for p in paths]
    out = [emb.embed(np.stack(arrays[i : i + batch_size]))
           for i in range(0, len(arrays), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, emb.dim), np.float32)


def store_embedder(manifest) -> Embedder:
    """The Embedder of a store's manifest, refused when its weights are not the store's."""
    m = manifest
    emb = Embedder(EmbedConfig(model=m.model, layer=m.layer, pool=m.pool, weights=m.weights,
                               image_size=m.image_size, resize=m.resize,
                               precision=m.precision))
    if emb.weights_sha256 != m.weights_sha256:
        raise StoreMismatch(
            f"the weights at {m.weights} are not the ones this store was built with "
            f"(sha256 {emb.weights_sha256[:12]} != {m.weights_sha256[:12]}); "
            "restore the original weights file")
    return emb


def model_fingerprint(config: EmbedConfig, weights_sha: str) -> str:
    """sha256 (16 hex digits) of the resolved embedding recipe and the weights' hash."""
    d = asdict(config)
    d.pop("weights")  # the source does not matter, the weights themselves do
    d["weights_sha256"] = weights_sha
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
