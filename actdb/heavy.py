"""Heavy third-party imports (Keras with its backend, UMAP), made lazily and in one place.

TensorFlow's C++ runtime writes notices to file descriptor 2 while it is imported (oneDNN,
CUDA probing, ``cuInit ... UNKNOWN ERROR (303)`` on machines without a GPU), before any Python
setting applies. A library must not touch process-wide state, so by default nothing is hidden;
an application that owns its process (the ``actdb`` command) calls :func:`quiet_imports` once,
and the first import of those libraries then runs with fd 2 pointed at /dev/null.

>>> import actdb.heavy as heavy
>>> heavy.quiet_imports(False)
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

_quiet = False
_lock = threading.Lock()


def quiet_imports(enabled: bool = True) -> None:
    """Ask for heavy imports to run with fd 2 silenced (for command-line applications)."""
    global _quiet
    _quiet = enabled


@contextlib.contextmanager
def _silenced():
    if not _quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def keras():
    """The ``keras`` module, its backend imported (quietly when asked)."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    with _lock, _silenced():
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


def umap():
    """The ``umap`` module (it imports TensorFlow and numba when they are installed)."""
    if "umap" in sys.modules:
        return sys.modules["umap"]
    keras()  # TensorFlow first, so its notices are silenced too
    with _lock, _silenced():
        import umap

    return umap
