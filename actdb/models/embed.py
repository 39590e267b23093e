"""Turn decoded images into pooled activation vectors, on any Keras 3 backend.

An :class:`Embedder` is built once per run from an :class:`EmbedConfig`: the Keras model up
to the layer, pooled in float32 (``GlobalAveragePooling2D`` or ``GlobalMaxPooling2D``), its
``preprocess_input``, and the compute precision. It runs through Keras' own compiled predict
step, so TensorFlow, JAX and PyTorch (``KERAS_BACKEND``) give the same vectors to float
rounding, and the model fingerprint does not depend on the backend. Ingest and every query go
through :meth:`Embedder.embed`, so a query image is embedded exactly like the data.

>>> emb = Embedder(EmbedConfig(weights="random:0", image_size=32, precision="fp32"))
>>> emb.embed(np.zeros((1, 32, 32, 3), np.uint8)).shape
(1, 512)
"""

from __future__ import annotations

import functools
import threading
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from actdb import heavy
from actdb.errors import StoreMismatch, UsageError
from actdb.images import RESIZE_METHODS
from actdb.models.cache import BUILT
from actdb.models.common import (
    PRECISIONS,
    cpu_has_bf16,
    embed_decoded,
    is_torch_model,
    model_fingerprint,
    uint8_images,
)
from actdb.models.registry import (
    default_weights,
    get_spec,
    last_spatial,
    layer_names,
    load_application,
    weights_sha256,
)
from actdb.options import EmbedConfig

_BUILD_LOCK = threading.Lock()


def backend() -> str:
    """The Keras backend in use (``KERAS_BACKEND``: tensorflow, jax or torch)."""
    return heavy.keras().backend.backend()


def gpu_capability() -> tuple[int, int] | None:
    """The first GPU's CUDA compute capability under the current backend (None: no GPU)."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        cc = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") \
            if gpus else None
        return tuple(cc) if cc else None
    if name == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        cc = getattr(gpus[0], "compute_capability", None) if gpus else None
        return tuple(int(x) for x in str(cc).split(".")[:2]) if cc else None
    if name == "torch":
        import torch

        return torch.cuda.get_device_capability(0) if torch.cuda.is_available() else None
    return None


def resolve_precision(precision: str, model: str = "vgg19") -> str:
    """``auto`` becomes ``bf16`` on a GPU with native bf16 (compute capability 8.0 and up) or
    a bf16-capable CPU, else ``fp32`` (the GPU as ``model``'s framework sees it). See the
    README (Precision) for the measurements."""
    if is_torch_model(model):
        from actdb.models import torch_embed

        return torch_embed.resolve_precision(precision)
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    cc = gpu_capability()
    if cc is not None:
        return "bf16" if cc >= (8, 0) else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def gpu_present(model: str) -> bool:
    """Whether ``model``'s framework (Keras' backend, or torch) sees a CUDA GPU."""
    if is_torch_model(model):
        from actdb.models.torchnet import torch

        return bool(torch().cuda.is_available())
    return gpu_capability() is not None


def default_batch_size(gpu: bool | None = None) -> int:
    """Images per forward pass: 256 on a GPU, 32 on a CPU (``gpu`` None: this process's).

    >>> default_batch_size(gpu=True), default_batch_size(gpu=False)
    (256, 32)
    """
    if gpu is None:
        gpu = gpu_capability() is not None
    return 256 if gpu else 32


class Network:
    """A network built once with its weights and precision, at one input size: the base that
    one Embedder, or several layers' Embedders in one forward pass, cut and pool."""

    def __init__(self, config: EmbedConfig):
        keras = heavy.keras()
        self.spec = spec = get_spec(config.model, config.preprocess)
        if config.resize not in RESIZE_METHODS:
            raise UsageError(
                f"unknown resize {config.resize!r}; use one of {', '.join(RESIZE_METHODS)}"
            )
        self.size = size = config.image_size or spec.native_size or 224
        if size < 32:
            raise UsageError(f"image_size must be at least 32, not {size}", param="image_size")
        self.precision = resolve_precision(config.precision)
        with _BUILD_LOCK:  # the dtype policy is Keras' global setting, restored after
            previous = keras.config.dtype_policy()
            keras.config.set_dtype_policy(
                "mixed_bfloat16" if self.precision == "bf16" else "float32")
            try:
                self.base = load_application(spec, config.weights, include_top=False,
                                             input_shape=(size, size, 3))
            finally:
                keras.config.set_dtype_policy(previous)
        fixed = tuple(self.base.input.shape[1:3])
        if spec.saved and None not in fixed:  # a saved model may take one size only
            if config.image_size not in (None, fixed[0]):
                raise UsageError(f"{spec.name} takes {fixed[0]}x{fixed[1]} images; pass "
                                 f"--image-size {fixed[0]} or leave it out", param="image_size")
            self.size = int(fixed[0])
        #: layers by their stable names (``registry.layer_names``)
        self.layers = dict(zip(layer_names(self.base, renumber=not spec.saved),
                               self.base.layers, strict=True))


def _on_uint8(keras, model, preprocess, size: int):
    """``model`` (float RGB in, preprocessed) behind a uint8 input, with the model's own
    preprocessing in float32 inside the graph. The device then receives a quarter of the
    bytes and the host runs no numpy pass: on an H200 the float32 copy alone held an
    Embedder to ~1,150 img/s and numpy's preprocessing to ~1,800 (bench/gpu.py stages)."""
    images = keras.Input((size, size, 3), dtype="uint8", name="images")
    pre = keras.layers.Lambda(lambda t: preprocess(keras.ops.cast(t, "float32")),
                              dtype="float32", name="preprocess")
    return keras.Model(images, model(pre(images)))


def _inference(model, x):
    return model(x, training=False)


class _Forward:
    """A uint8-input Keras model's forward pass on a batch: its outputs (one or several) as
    float32. On TensorFlow one ``tf.function`` of a fixed signature (any batch size), traced
    once: Keras' ``predict_on_batch`` traces again for every new batch size, and a process
    with a few models (``--layers``, ``--space all``) drew TensorFlow's "triggered
    tf.function retracing" warnings. TensorFlow counts traces by the traced function's
    ``__code__``, which a lambda shares across models: a ``functools.partial`` (no
    ``__code__``) is counted per model. JAX compiles per shape: batches are padded to a power
    of two there."""

    def __init__(self, keras, model, size: int):
        self.model = model
        self.backend = keras.backend.backend()
        self._fn = None
        if self.backend == "tensorflow":
            import tensorflow as tf

            self._fn = tf.function(functools.partial(_inference, model), input_signature=[
                tf.TensorSpec((None, size, size, 3), tf.uint8)])

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        n = len(x)
        if self._fn is not None:
            out = self._fn(x)
        else:
            if self.backend == "jax" and n & (n - 1):
                x = np.concatenate([x, np.zeros((1 << n.bit_length(), *x.shape[1:]),
                                                x.dtype)[: (1 << n.bit_length()) - n]])
            out = self.model.predict_on_batch(x)
        outs = out if isinstance(out, list | tuple) else [out]
        return [np.asarray(o, dtype=np.float32)[:n] for o in outs]


class Embedder:
    """A built, ready-to-run feature extractor (model up to ``layer``, then pooling)."""

    runtime = "keras"

    def __init__(self, config: EmbedConfig, *, network: Network | None = None,
                 warm: bool = True):
        keras = heavy.keras()
        if config.pool not in ("mean", "max"):
            raise UsageError(f"unknown pool {config.pool!r} for a Keras layer (a spatial "
                             "one): use mean or max", param="pool")
        net = network or Network(config)
        spec, size, precision, base, layers = (net.spec, net.size, net.precision, net.base,
                                               net.layers)
        layer = config.layer or spec.default_layer or last_spatial(layers)
        if layer not in layers:
            import difflib

            close = difflib.get_close_matches(layer, list(layers), n=3, cutoff=0.75)
            hint = f" (close: {', '.join(close)})" if close else ""
            raise UsageError(f"unknown layer {layer!r} for {spec.name}{hint}; `actdb layers "
                             f"{config.model}` lists its {len(layers)} layers", param="layer")
        self.config = replace(config, model=spec.name, layer=layer, precision=precision,
                              image_size=size, weights=default_weights(spec, config.weights),
                              preprocess=spec.preprocess if spec.saved else None)
        self.spec = spec
        #: the model up to the layer (its spatial activations: dream, heatmaps)
        self.features = keras.Model(base.input, layers[layer].output)
        if len(self.features.output.shape) != 4:
            raise UsageError(f"layer {layer!r} is not a spatial (4-D) layer", param="layer")
        pool = (keras.layers.GlobalAveragePooling2D if config.pool == "mean"
                else keras.layers.GlobalMaxPooling2D)(dtype="float32")
        #: the features pooled over positions, in float32
        self.model = keras.Model(base.input, pool(self.features.output))
        self.dim = int(self.features.output.shape[-1])
        self.weights_sha256 = weights_sha256(self.features)
        self._preprocess = spec.preprocess_input()
        self.images_model = _on_uint8(keras, self.model, self._preprocess, size)
        self._forward = _Forward(keras, self.images_model, size)
        if warm:
            self.embed(np.zeros((1, size, size, 3), np.uint8))  # compile

    @property
    def fingerprint(self) -> str:
        """A short hash of everything that decides the vectors (used to key cached queries)."""
        return model_fingerprint(self.config, self.weights_sha256)

    @property
    def route(self) -> str:
        """How the numbers are computed (runtime and precision): ``keras-bf16``..."""
        return f"keras-{self.config.precision}"

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """The model's own ``preprocess_input`` of a uint8 RGB batch, as float32."""
        return np.asarray(self._preprocess(np.asarray(images, dtype=np.float32).copy()),
                          np.float32)

    def preprocess_tensor(self, x):
        """The model's ``preprocess_input`` on float RGB in 0..255, a tensor (gradients flow
        through it) or an array (which it may change in place)."""
        return self._preprocess(x)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Pooled float32 vectors for a (n, size, size, 3) uint8 RGB batch."""
        return self._forward(uint8_images(images))[0]

    def embed_files(self, paths: list[str | Path | bytes], batch_size: int = 32,
                    names: list[str] | None = None) -> np.ndarray:
        """Decode and embed image files (or raw bytes) exactly as ingest does; a bad image's
        error names it (``names``, else its path)."""
        return embed_decoded(self, paths, batch_size, names)

    @property
    def backend(self) -> str:
        """What runs the network: the Keras backend (tensorflow, jax or torch)."""
        return backend()

    def write_onnx(self, path: Path) -> None:
        """Export the uint8-input model (preprocessing and pooling inside) to ONNX at
        ``path`` through Keras' own exporter."""
        import warnings

        from actdb.models.common import quiet_logger

        keras = heavy.keras()
        size = self.config.image_size
        spec = keras.InputSpec(shape=(None, size, size, 3), dtype="uint8")
        with warnings.catch_warnings(), quiet_logger("tf2onnx"):  # not the user's notices
            warnings.simplefilter("ignore")
            self.images_model.export(str(path), format="onnx", verbose=False,
                                     input_signature=[spec])


class LayersEmbedder:
    """Several layers of one network in one forward pass (one Keras model with an output per
    layer): ``members`` are the layers' Embedders, each exactly what ``Embedder`` gives alone
    (its config, fingerprint and vectors).

    >>> two = LayersEmbedder(EmbedConfig(weights="random:0", image_size=32, precision="fp32"),
    ...                      ["block4_conv4", "block5_conv4"])
    >>> [v.shape for v in two.embed(np.zeros((2, 32, 32, 3), np.uint8))]
    [(2, 512), (2, 512)]
    """

    def __init__(self, config: EmbedConfig, layers: list[str]):
        if not layers or len(set(layers)) != len(layers):
            raise UsageError("name each layer once, and at least one", param="layers")
        keras = heavy.keras()
        net = Network(config)
        # the members are not compiled: only the model with every layer's output runs
        self.members = [Embedder(replace(config, layer=lyr), network=net, warm=False)
                        for lyr in layers]
        first = self.members[0]
        self.model = keras.Model(net.base.input, [m.model.output for m in self.members])
        self.images_model = _on_uint8(keras, self.model, first._preprocess, net.size)
        self.config = first.config
        self._forward = _Forward(keras, self.images_model, net.size)
        self.embed(np.zeros((1, net.size, net.size, 3), np.uint8))  # compile

    def embed(self, images: np.ndarray) -> list[np.ndarray]:
        """Each layer's pooled float32 vectors for a uint8 RGB batch, from one forward pass."""
        return self._forward(uint8_images(images))


class OneLayer:
    """One Embedder in :class:`LayersEmbedder`'s shape (``members``, ``embed`` -> a list)."""

    def __init__(self, emb: Embedder):
        self.members, self.config = [emb], emb.config

    def embed(self, images: np.ndarray) -> list[np.ndarray]:
        return [self.members[0].embed(images)]


def network_key(c) -> tuple:
    """What must agree for layers to come from one forward pass (an EmbedConfig or a
    Manifest): the network, its weights' source and the input's size, resize, precision and
    preprocessing. (A space's ``weights_sha256`` hashes the model up to its own layer, so it
    differs between the layers of one network.)

    >>> b4 = EmbedConfig(weights="random:0", image_size=32, layer="block4_conv4")
    >>> network_key(b4) == network_key(replace(b4, layer="block5_conv4"))
    True
    """
    return (Path(c.model).name, c.pool, c.weights, c.image_size, c.resize, c.precision,
            c.preprocess)


def layers_embedder(config: EmbedConfig, layers: list[str], shared: bool = True):
    """What embeds ``layers`` of ``config``'s network in one forward pass: a
    :class:`LayersEmbedder`, or for one layer its Embedder as a :class:`OneLayer`
    (``shared``: the one this process built before for the same recipe, layers and weights,
    see :func:`shared_embedder`)."""
    if len(layers) == 1:
        one = replace(config, layer=layers[0])
        return OneLayer(shared_embedder(one) if shared else build_embedder(one))
    if is_torch_model(config.model):
        from actdb.models.torch_embed import TorchLayers as several
    else:
        several = LayersEmbedder
    if not shared:
        return several(config, layers)
    return BUILT.get((*_recipe_key(config), tuple(layers)), lambda: several(config, layers))


def build_embedder(config: EmbedConfig):
    """A new embedder of ``config``: a Keras :class:`Embedder`, or a TorchEmbedder for a
    torchvision, timm or PyTorch file model (``actdb.models.torch_embed``)."""
    if is_torch_model(config.model):
        from actdb.models.torch_embed import TorchEmbedder

        return TorchEmbedder(config)
    return Embedder(config)


def _weights_identity(weights: str) -> tuple:
    """What the weights are, as cheaply as it can be told: a file by its path, size and
    modification time (a changed file is built again); imagenet and random:SEED by name."""
    path = Path(weights).expanduser()
    if path.is_file():
        st = path.stat()
        return str(path.resolve()), st.st_size, st.st_mtime_ns
    return (weights,)


def shared_embedder(config: EmbedConfig) -> Embedder:
    """An Embedder for ``config``, shared with earlier calls of this process for the same
    recipe and weights (kept in :data:`actdb.models.cache.BUILT`), a weights file or saved
    model known by its path, size and modification time (an Embedder holds no state a caller
    changes)."""
    return BUILT.get(_recipe_key(config), lambda: build_embedder(config))


def _recipe_key(config: EmbedConfig) -> tuple:
    return (*asdict(replace(config, weights="")).items(), _weights_identity(config.weights),
            _weights_identity(config.model))  # a saved model's file holds weights too


def manifest_config(manifest) -> EmbedConfig:
    """The EmbedConfig a store's manifest records."""
    m = manifest
    return EmbedConfig(model=m.model, layer=m.layer, pool=m.pool, weights=m.weights,
                       image_size=m.image_size, resize=m.resize, precision=m.precision,
                       preprocess=m.preprocess)


def store_embedder(manifest, precision: str | None = None) -> Embedder:
    """The Embedder of a store's manifest (in ``precision``, default the store's), refused
    when its weights are not the store's."""
    m = manifest
    if m.preprocess is not None and not Path(m.model).is_file():
        raise StoreMismatch(f"this store's model file {m.model} is missing; put it back (its "
                            f"weights are checked by sha256 {m.weights_sha256[:12]})")
    emb = shared_embedder(replace(manifest_config(m), precision=precision or m.precision))
    if emb.weights_sha256 != m.weights_sha256:
        where = m.model if m.weights == "saved" else m.weights
        raise StoreMismatch(
            f"the weights at {where} are not the ones this store was built with "
            f"(sha256 {emb.weights_sha256[:12]} != {m.weights_sha256[:12]}); "
            "restore the original weights file")
    return emb
