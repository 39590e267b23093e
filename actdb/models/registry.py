"""Model registry: which Keras applications actdb can embed with, and how to load them.

Weights are one of ``imagenet`` (Keras' own download and cache), a path to a Keras weights
file, or ``random:SEED``: Keras' initialisation scheme (Glorot-uniform kernels; biases and
batch-norm terms at their constant starts) drawn from a local NumPy generator, so the same
seed gives the same weights on every Keras backend and no global random state is touched.
Nothing ever falls back to random weights silently: a failure to load is a
:class:`WeightsUnavailable` error.

>>> spec = get_spec("vgg19")
>>> spec.default_layer
'block5_conv4'
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from actdb import heavy
from actdb.errors import UsageError, WeightsUnavailable


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A Keras application: constructor, preprocessing module and defaults."""

    name: str
    constructor: str  # attribute of keras.applications
    preprocess_module: str  # submodule of keras.applications holding preprocess_input
    default_layer: str
    top_weights_file: str  # file names Keras caches under ~/.keras/models
    notop_weights_file: str

    def preprocess_input(self):
        """Return the model's own ``preprocess_input`` function."""
        return getattr(heavy.keras().applications, self.preprocess_module).preprocess_input


MODELS: dict[str, ModelSpec] = {
    "vgg19": ModelSpec(
        name="vgg19", constructor="VGG19", preprocess_module="vgg19",
        default_layer="block5_conv4",
        top_weights_file="vgg19_weights_tf_dim_ordering_tf_kernels.h5",
        notop_weights_file="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "vgg16": ModelSpec(
        name="vgg16", constructor="VGG16", preprocess_module="vgg16",
        default_layer="block5_conv3",
        top_weights_file="vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        notop_weights_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "resnet50": ModelSpec(
        name="resnet50", constructor="ResNet50", preprocess_module="resnet50",
        default_layer="conv5_block3_out",
        top_weights_file="resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        notop_weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
}


def get_spec(name: str) -> ModelSpec:
    """Look up a model by name, or raise a UsageError listing the known ones."""
    try:
        return MODELS[name.lower()]
    except KeyError:
        raise UsageError(
            f"unknown model {name!r}; choose one of: {', '.join(MODELS)}"
        ) from None


def keras_cache_dir() -> Path:
    """Where Keras caches downloaded weights (``$KERAS_HOME/models`` or ``~/.keras/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def parse_weights(weights: str) -> tuple[str, str | int | None]:
    """Split a weights source into (kind, value): imagenet, ('random', seed) or ('file', path).

    >>> parse_weights("random:3")
    ('random', 3)
    """
    if weights == "imagenet":
        return "imagenet", None
    if weights.startswith("random:"):
        try:
            return "random", int(weights.split(":", 1)[1])
        except ValueError:
            raise UsageError(
                f"bad weights {weights!r}: use random:SEED with an integer SEED",
                param="weights") from None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UsageError(
            f"weights file {weights!r} not found; use --weights imagenet, a Keras weights "
            "file, or random:SEED", param="weights")
    return "file", str(path.resolve())


def load_application(spec: ModelSpec, weights: str, include_top: bool, input_shape=None):
    """Build the Keras application with the requested weights.

    ``input_shape`` is ignored when ``include_top`` (the classifier needs 224x224).
    """
    keras = heavy.keras()
    kind, value = parse_weights(weights)
    ctor = getattr(keras.applications, spec.constructor)
    kwargs = {"include_top": include_top}
    if not include_top and input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    if kind == "imagenet":
        fname = spec.top_weights_file if include_top else spec.notop_weights_file
        try:
            with contextlib.redirect_stdout(sys.stderr):  # Keras prints "Downloading data"
                return ctor(weights="imagenet", **kwargs)
        except Exception as exc:  # Keras raises a bare Exception on URL fetch failure
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "URL fetch failure" in reason:
                reason = "download failed: " + reason.split(" -- ")[-1]
            raise WeightsUnavailable(
                f"cannot load ImageNet weights for {spec.name} ({reason}); put {fname} in "
                f"{keras_cache_dir()} or pass --weights FILE (or random:SEED for an untrained net)"
            ) from exc
    if kind == "random":
        model = ctor(weights=None, **kwargs)
        seeded_weights(model, value)
        return model
    model = ctor(weights=None, **kwargs)
    try:
        model.load_weights(value)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        top = "with" if include_top else "without"
        raise WeightsUnavailable(
            f"weights file {value} does not fit {spec.name} {top} its classifier top ({reason}); "
            f"pass a {spec.name} weights file saved by Keras"
        ) from exc
    return model


def seeded_weights(model, seed: int) -> None:
    """Give every kernel Glorot-uniform values from ``np.random.default_rng([seed, i])``
    (fans over the receptive field, as Keras counts them); other weights keep their constant
    initial values. The same on every backend, and local: no global seed is set.

    >>> from types import SimpleNamespace as NS
    >>> import numpy as np
    >>> k = NS(path="conv/kernel", shape=(3, 3, 3, 64), assigned=None)
    >>> k.assign = lambda v: setattr(k, "assigned", v)
    >>> seeded_weights(NS(weights=[k]), 0)
    >>> bool(np.abs(k.assigned).max() <= np.sqrt(6 / (27 + 576)))
    True
    """
    import numpy as np

    for i, w in enumerate(model.weights):
        if w.path.rsplit("/", 1)[-1] != "kernel":
            continue
        shape = tuple(int(d) for d in w.shape)
        field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[-2] * field, shape[-1] * field
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        rng = np.random.default_rng([seed, i])
        w.assign(rng.uniform(-limit, limit, shape).astype(np.float32))


def weights_sha256(model) -> str:
    """sha256 over a model's weight arrays: identifies the weights whatever their source."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for w in model.weights:
        arr = np.ascontiguousarray(np.asarray(heavy.keras().ops.convert_to_numpy(w.value),
                                              dtype=np.float32))
        h.update(w.path.encode() if hasattr(w, "path") else b"")
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()
