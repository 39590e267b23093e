"""Which runtime embeds a space's query images: ONNX Runtime on the space's checked ONNX
model (no TensorFlow, Keras or PyTorch imported), or the network's own framework (Keras, or
PyTorch for a torchvision, timm or PyTorch file network).

A space's default route reproduces its stored vectors, whoever asks (the command line, a
notebook, the service): an fp32 space embeds with ONNX Runtime where it keeps a checked
``model.onnx`` (within float rounding of its framework's fp32, and no framework to import),
else with its framework; a bf16 space with its own framework's bf16 model, the only route
that gives its stored numbers back (ONNX Runtime computes fp32, off by bf16's rounding at
every layer, which moves a stored image a noticeable part of a nearest-neighbour distance:
bench/routes.py). ``runtime="onnx"``, or the space's framework (``"keras"``, ``"torch"``),
asks for one route; ingest keeps the ONNX model of every fp32 space (:func:`keep_onnx`), and
``runtime="onnx"`` exports one the first time it is asked. Wherever the ONNX route was asked
or expected and cannot be taken, the query embeds with the framework and an ActdbWarning
says why in one line: nothing silently changes vectors. The route is part of a cached
query's key and of every answer.

>>> RUNTIMES
('keras', 'torch', 'onnx')
"""

from __future__ import annotations

import warnings

from actdb.errors import ActdbWarning, UsageError
from actdb.models.common import is_torch_model
from actdb.store.catalog import files
from actdb.store.store import Store

RUNTIMES = ("keras", "torch", "onnx")


def framework(store: Store) -> str:
    """The framework that runs the space's network: ``keras`` or ``torch``."""
    return "torch" if is_torch_model(store.manifest.model) else "keras"


def check_runtime(runtime: str | None, store: Store | None = None) -> str | None:
    """``runtime`` if it is one of RUNTIMES or None (and, given ``store``, ONNX or the
    space's own framework), else a UsageError."""
    if runtime is not None and runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}; use keras, torch or onnx",
                         param="runtime")
    if store is not None and runtime not in (None, "onnx", framework(store)):
        raise UsageError(f"the space {store.manifest.space_name} runs on "
                         f"{framework(store)}, not {runtime}: use --runtime "
                         f"{framework(store)} or onnx", param="runtime")
    return runtime


def keep_onnx(store: Store) -> str | None:
    """Export the space's model to ONNX, check it against Keras (fp32) and keep it in the
    space's folder. Returns None when it is kept, else why not (one line)."""
    from actdb.models.embed import store_embedder
    from actdb.models.onnx import OnnxUnavailable, export

    try:
        emb = store_embedder(store.manifest, precision="fp32")
        export(emb, files.onnx_model_path(store.dir), store.manifest.fingerprint,
               write=files.atomic_write)
    except OnnxUnavailable as exc:
        return str(exc)
    except OSError as exc:
        return f"the ONNX model could not be written ({exc.strerror or exc})"
    return None


def planned_route(store: Store, runtime: str | None = None) -> str:
    """The numeric route (runtime and precision) that :func:`query_embedder` takes for
    ``runtime``, known without building anything: part of a cached query's key, so that an
    answer never depends on which route embedded an image first. When the plan cannot be
    followed (its warning says why), the embedder's own ``route`` is what counts.

    >>> planned_route(Store.open(store), "keras")
    'keras-fp32'
    """
    if _takes_onnx(store, check_runtime(runtime, store)):
        return "onnx-fp32"
    return f"{framework(store)}-{store.manifest.precision}"


def _takes_onnx(store: Store, runtime: str | None) -> bool:
    """Whether ``runtime`` means ONNX Runtime for this space (see the module)."""
    if runtime is not None:
        return runtime == "onnx"
    return store.manifest.precision != "bf16" and files.onnx_model_path(store.dir).is_file()


def query_embedder(store: Store, runtime: str | None = None):
    """What embeds query images of ``store``'s space under ``runtime`` (see the module): an
    OnnxEmbedder or the store's Keras Embedder."""
    from actdb.models.embed import manifest_config, store_embedder

    if _takes_onnx(store, check_runtime(runtime, store)):
        path = files.onnx_model_path(store.dir)
        why = keep_onnx(store) if runtime == "onnx" and not path.is_file() else None
        if why is None and path.is_file():
            from actdb.models.onnx import OnnxEmbedder, OnnxUnavailable, machine_key

            m = store.manifest
            try:
                optimized = files.onnx_optimized_path(store.dir, machine_key())
                return OnnxEmbedder(path, manifest_config(m), m.fingerprint,
                                    optimized=optimized)
            except OnnxUnavailable as exc:
                why = str(exc)
        if why is not None:
            name = "PyTorch" if framework(store) == "torch" else "Keras"
            warnings.warn(ActdbWarning(f"{why}; embedding with {name}"), stacklevel=2)
    return store_embedder(store.manifest)
