"""Heavy third-party imports (Keras with its backend, UMAP), made lazily and in one place.

TensorFlow's C++ runtime writes notices to file descriptor 2 while it is imported (oneDNN,
CPU features, CUDA probing with ``failed call to cuInit ... (303)`` on machines without a GPU),
before any Python setting can quiet it; Ray's does the same when a cluster starts. A library
must not print, nor set the environment for its user, so :func:`quietly` captures fd 2 for
just those calls and replays what it captured, less those notices: everything else, a real
error included, still reaches stderr. ``quiet_imports(False)`` shows everything.

>>> import actdb.heavy as heavy
>>> noise = "I0000 00:00:1796283423.764 24921 cudart_stub.cc:31] Could not find cuda drivers"
>>> heavy.is_notice(noise), heavy.is_notice("Traceback (most recent call last):")
(True, False)
>>> heavy.is_notice("[2026-12-03 07:40:39,681 I 26342 26342] logging.cc:303: Set ray log level")
True
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading

_quiet = True
_lock = threading.Lock()

#: A line of the C++ logs (absl/glog: ``I0000 00:00:17.5  123 file.cc:31] ...``; TF's older
#: ``2026-12-03 06:14:17.123: W tensorflow/...cc:31] ...``; Ray's ``[2026-12-03 07:40:39,681 I
#: 26342 26342] logging.cc:303: ...``): its level, then file and message.
_LOG_LINE = re.compile(r"^(?:([IWEF])\d{4} [\d:.]+\s+\d+|\d{4}-\d\d-\d\d [\d:.]+: ([IWEF])|"
                       r"\[\d{4}-\d\d-\d\d [\d:,]+ ([IWEF]) \d+ \d+\])"
                       r" (?:\S*/)?(.*)$", re.DOTALL)
#: An error line that is CUDA probing on a machine without a GPU.
_CUDA_PROBE = re.compile(r"^cuda\w*\.cc:|cuInit|Unable to register cu(DNN|FFT|BLAS)")
#: The lines absl and TensorFlow's CPU check write around their log lines.
_AROUND = re.compile(r"^WARNING: All log messages before absl::InitializeLog|"
                     r"^To enable the following instructions:")


def quiet_imports(enabled: bool = True) -> None:
    """Drop (True, the default) or show (False) the C++ notices of heavy imports."""
    global _quiet
    _quiet = enabled


def is_notice(line: str) -> bool:
    """A line of third-party C++ chatter: an info or warning log line, or CUDA probing."""
    if _AROUND.match(line):
        return True
    m = _LOG_LINE.match(line)
    return bool(m) and ((m.group(1) or m.group(2) or m.group(3)) in ("I", "W")
                        or bool(_CUDA_PROBE.search(m.group(4))))


@contextlib.contextmanager
def quietly():
    """Run the block with fd 2 captured; then write what it captured to stderr, less the
    notices (:func:`is_notice`)."""
    if not _quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(True)
                    if not is_notice(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def triton_first() -> None:
    """Load triton's library, when it is installed, before TensorFlow. PyTorch's Linux wheels
    bring triton, and its ``libtriton.so`` loaded after TensorFlow ends the process with a
    segmentation fault (their LLVMs clash: seen with TensorFlow 2.21 and torch 2.14's triton),
    while loaded first it lets one process hold both frameworks' networks. Loading it takes
    ~30 ms and imports nothing."""
    import ctypes
    import importlib.util
    from pathlib import Path

    if "tensorflow" in sys.modules or triton_loaded():
        return
    spec = importlib.util.find_spec("triton")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for lib in sorted(Path(folder, "_C").glob("libtriton*.so")):
            ctypes.CDLL(str(lib))
            return


def triton_loaded() -> bool:
    """Whether this process has loaded triton's library (Linux; elsewhere False)."""
    try:
        with open("/proc/self/maps") as maps:
            return any("libtriton" in line for line in maps)
    except OSError:
        return False


def keras():
    """The ``keras`` module, its backend imported (quietly when asked; triton's library
    first, see :func:`triton_first`)."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    triton_first()
    with _lock, quietly():
        try:
            import keras
        except ImportError as exc:
            from actdb.errors import UsageError

            wanted = os.environ.get("KERAS_BACKEND", "tensorflow")
            raise UsageError(f"Keras cannot load its {wanted} backend ({exc}); install it "
                             f"(e.g. pip install {wanted}) or choose another backend"
                             ) from None

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # CUDA probing logs here, once
    return keras


def faiss():
    """The ``faiss`` module, imported on first use (``import actdb`` stays light)."""
    import faiss

    return faiss


def umap():
    """The ``umap`` module (it imports TensorFlow and numba when they are installed)."""
    if "umap" in sys.modules:
        return sys.modules["umap"]
    keras()  # TensorFlow first, so its notices are silenced too
    with _lock, quietly():
        import umap

    return umap
