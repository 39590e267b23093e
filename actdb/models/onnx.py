"""A store's embedding model as ONNX, run by ONNX Runtime: a new image's vector without
importing TensorFlow or Keras.

:func:`export` writes an embedder's model (uint8 images in, the model's own preprocessing
and pooling inside, float32 vectors out) through its framework's own exporter (Keras'
``model.export(format="onnx")``, ``torch.onnx.export``), in float32, and checks ONNX
Runtime's vectors against the framework's on a few fixed inputs before
the file is kept; the model's fingerprint goes into the file's metadata. An
:class:`OnnxEmbedder` answers like an Embedder (``config``, ``dim``, ``embed``,
``embed_files``) and is refused for another fingerprint. ONNX Runtime's optimised graph is
cached beside the model, keyed by this machine's CPU and the runtime's version, so a later
process skips the optimisation.

>>> OnnxEmbedder.runtime
'onnx'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import numpy as np

from actdb.errors import ActdbError
from actdb.models.common import embed_decoded, uint8_images
from actdb.options import EmbedConfig

#: ONNX Runtime's vectors equal the framework's fp32 ones to this (max abs difference / max
#: abs value)
TOLERANCE = 1e-5
#: the metadata key of the model's fingerprint inside the ONNX file
FINGERPRINT_KEY = "actdb.fingerprint"
_CHECK_IMAGES = 4


class OnnxUnavailable(ActdbError):
    """The ONNX route cannot be taken (no runtime, export failed or disagreed with Keras, a
    model of another recipe): the caller embeds with Keras and says why."""


def export(emb, path: Path, fingerprint: str, write=None) -> float:
    """Export ``emb`` (fp32, a Keras or PyTorch embedder: its ``write_onnx``) to ONNX at
    ``path`` and check it against the framework; returns the largest relative difference
    seen. ``fingerprint`` is stored in the file's metadata; ``write(path, fn)``, when given,
    makes the file (e.g. an atomic write). OnnxUnavailable when the framework cannot export
    the model or ONNX Runtime disagrees beyond TOLERANCE."""
    if emb.config.precision != "fp32":
        raise ValueError("export an fp32 Embedder")
    size = emb.config.image_size
    images = np.random.default_rng(0).integers(0, 256, (_CHECK_IMAGES, size, size, 3),
                                               dtype=np.uint8)
    want = emb.embed(images)
    who = "PyTorch" if emb.runtime == "torch" else "Keras"
    diffs = []

    def make(tmp: Path) -> None:
        try:
            import onnx

            emb.write_onnx(tmp)
            model = onnx.load(str(tmp))
            model.metadata_props.add(key=FINGERPRINT_KEY, value=fingerprint)
            onnx.save(model, str(tmp))
        except Exception as exc:  # noqa: BLE001 - any exporter failure: use the framework
            raise OnnxUnavailable(f"{who} could not export {emb.config.model} to ONNX "
                                  f"({type(exc).__name__}: {str(exc)[:200]})") from exc
        try:
            session = _session(tmp, None)
            diff = _relative(session.run(None, _feed(session, images))[0], want)
        except Exception as exc:  # noqa: BLE001 - an export ONNX Runtime cannot run
            raise OnnxUnavailable(f"ONNX Runtime cannot run the export of "
                                  f"{emb.config.model} ({type(exc).__name__}: "
                                  f"{str(exc)[:200]})") from exc
        if not diff <= TOLERANCE:
            raise OnnxUnavailable(f"the ONNX export of {emb.config.model} differs from {who} "
                                  f"by {diff:.1e} (more than {TOLERANCE:.0e})")
        diffs.append(diff)

    (write or _write_or_remove)(Path(path), make)
    return diffs[0]


def _write_or_remove(path: Path, make) -> None:
    try:
        make(path)
    except BaseException:
        path.unlink(missing_ok=True)  # nothing half-made is left
        raise


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-30))


def _feed(session, images: np.ndarray) -> dict:
    return {session.get_inputs()[0].name: images}


def _ort():
    """The onnxruntime module (OnnxUnavailable when it is not installed)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxUnavailable("ONNX Runtime is not installed (pip install onnxruntime)"
                              ) from exc
    return onnxruntime


def machine_key() -> str:
    """What an optimised graph depends on: ONNX Runtime's version and this CPU's model and
    flags (8 hex digits)."""
    onnxruntime = _ort()
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = "".join(line for line in fh if line.startswith(("model name", "flags")))
    except OSError:
        import platform

        cpu = platform.processor()
    return hashlib.sha256(f"{onnxruntime.__version__}\n{cpu}".encode()).hexdigest()[:8]


def _session(path: Path, optimized: Path | None):
    """An ONNX Runtime session on the CPU; with ``optimized``, its optimised graph is read
    from there when present, else written there (best effort: a read-only store just
    optimises again next time). The graph is written under a name of this process's, then
    renamed into place, so two processes starting at once never read each other's half."""
    ort = _ort()

    def options():
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # its notices are not the user's
        return opts

    if optimized is not None and optimized.is_file():
        opts = options()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(optimized), opts,
                                        providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001 - a damaged cache: optimise the model again
            pass
    opts, tmp = options(), None
    if optimized is not None and os.access(optimized.parent, os.W_OK):
        tmp = optimized.with_name(f".{optimized.stem}.{os.getpid()}.onnx")
        opts.optimized_model_filepath = str(tmp)
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.replace(tmp, optimized)
    return session


class OnnxEmbedder:
    """A space's ONNX model in ONNX Runtime, answering as its Embedder would (to float
    rounding: within TOLERANCE of Keras fp32, checked when the model was exported)."""

    runtime = "onnx"
    route = "onnx-fp32"  # ONNX Runtime computes in fp32, whatever the store's precision

    def __init__(self, path: Path, config: EmbedConfig, fingerprint: str,
                 optimized: Path | None = None):
        _ort()
        try:
            self._session = _session(Path(path), optimized)
        except Exception as exc:  # noqa: BLE001
            raise OnnxUnavailable(f"ONNX Runtime could not load {path} "
                                  f"({type(exc).__name__}: {str(exc)[:200]})") from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        if meta.get(FINGERPRINT_KEY) != fingerprint:
            raise OnnxUnavailable(f"{path} is the model of another recipe (fingerprint "
                                  f"{meta.get(FINGERPRINT_KEY)}, the space's is {fingerprint})")
        self.config = config
        self.fingerprint = fingerprint
        self._input = self._session.get_inputs()[0].name
        self.dim = int(self._session.get_outputs()[0].shape[-1])

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Pooled float32 vectors for a (n, size, size, 3) uint8 RGB batch."""
        out = self._session.run(None, {self._input: uint8_images(images)})[0]
        return np.asarray(out, np.float32)

    def embed_files(self, paths: list, batch_size: int = 32,
                    names: list[str] | None = None) -> np.ndarray:
        """Decode and embed image files (or raw bytes) exactly as ingest does."""
        return embed_decoded(self, paths, batch_size, names)

    def __repr__(self) -> str:
        return f"OnnxEmbedder({self.config.model}, {self.fingerprint})"
