"""Model registry: every Keras application by name, a user's saved models, stable layer
names, and how to load weights.

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
import re
import sys
from pathlib import Path
from typing import NamedTuple

from actdb import heavy
from actdb.errors import UsageError, WeightsUnavailable
from actdb.models.common import PREPROCESS_MODES, ModelSpec, is_torch_model


def _family(family: str, module: str, default_layer: str, **models: tuple[str, int]):
    return {name: ModelSpec(name=name, family=family, constructor=ctor, preprocess=module,
                            native_size=size, default_layer=default_layer)
            for name, (ctor, size) in models.items()}


_B = [224, 240, 260, 300, 380, 456, 528, 600]
#: Every keras.applications image model by its lower-case name. Default layers are each
#: network's last convolutional stage (a ``include_top=False`` model's output; VGG's last
#: convolution before its pooling, as in the write-up).
MODELS: dict[str, ModelSpec] = {
    **_family("vgg", "vgg16", "block5_conv3", vgg16=("VGG16", 224)),
    **_family("vgg", "vgg19", "block5_conv4", vgg19=("VGG19", 224)),
    **_family("resnet", "resnet50", "conv5_block3_out", resnet50=("ResNet50", 224)),
    **_family("resnet", "resnet", "conv5_block3_out", resnet101=("ResNet101", 224),
              resnet152=("ResNet152", 224)),
    **_family("resnet_v2", "resnet_v2", "post_relu", resnet50_v2=("ResNet50V2", 224),
              resnet101_v2=("ResNet101V2", 224), resnet152_v2=("ResNet152V2", 224)),
    **_family("inception", "inception_v3", "mixed10", inception_v3=("InceptionV3", 299)),
    **_family("inception", "inception_resnet_v2", "conv_7b_ac",
              inception_resnet_v2=("InceptionResNetV2", 299)),
    **_family("xception", "xception", "block14_sepconv2_act", xception=("Xception", 299)),
    **_family("mobilenet", "mobilenet", "conv_pw_13_relu", mobilenet=("MobileNet", 224)),
    **_family("mobilenet", "mobilenet_v2", "out_relu", mobilenet_v2=("MobileNetV2", 224)),
    **_family("mobilenet", "mobilenet_v3", "activation_17",
              mobilenet_v3_small=("MobileNetV3Small", 224)),
    **_family("mobilenet", "mobilenet_v3", "activation_19",
              mobilenet_v3_large=("MobileNetV3Large", 224)),
    **_family("densenet", "densenet", "relu", densenet121=("DenseNet121", 224),
              densenet169=("DenseNet169", 224), densenet201=("DenseNet201", 224)),
    **_family("nasnet", "nasnet", "activation_187", nasnet_mobile=("NASNetMobile", 224)),
    **_family("nasnet", "nasnet", "activation_259", nasnet_large=("NASNetLarge", 331)),
    **_family("efficientnet", "efficientnet", "top_activation",
              **{f"efficientnet_b{i}": (f"EfficientNetB{i}", s) for i, s in enumerate(_B)}),
    **_family("efficientnet_v2", "efficientnet_v2", "top_activation",
              efficientnet_v2_b0=("EfficientNetV2B0", 224),
              efficientnet_v2_b1=("EfficientNetV2B1", 240),
              efficientnet_v2_b2=("EfficientNetV2B2", 260),
              efficientnet_v2_b3=("EfficientNetV2B3", 300),
              efficientnet_v2_s=("EfficientNetV2S", 384),
              efficientnet_v2_m=("EfficientNetV2M", 480),
              efficientnet_v2_l=("EfficientNetV2L", 480)),
    **_family("convnext", "convnext", "layer_normalization",
              **{f"convnext_{v.lower()}": (f"ConvNeXt{v}", 224)
                 for v in ("Tiny", "Small", "Base", "Large", "XLarge")}),
}


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


_BY_KEY = {_key(n): s for n, s in MODELS.items()}


def is_saved_model(name: str) -> bool:
    """True when ``name`` names a saved Keras model file rather than a registry model.

    >>> is_saved_model("vgg19"), is_saved_model("runs/finetuned.keras")
    (False, True)
    """
    return name.endswith((".keras", ".h5")) or "/" in name or "\\" in name


def find_spec(name: str) -> ModelSpec | None:
    """A registry model by any spelling of its name (``inception_v3``, ``InceptionV3``)."""
    return _BY_KEY.get(_key(name))


def get_spec(name: str, preprocess: str | None = None) -> ModelSpec:
    """A registry model, or a saved model file (which needs ``preprocess``); a UsageError
    naming the fix otherwise.

    >>> get_spec("InceptionV3").name, get_spec("inception_v3").native_size
    ('inception_v3', 299)
    """
    if preprocess not in (None, "", *PREPROCESS_MODES):
        raise UsageError(f"preprocess {preprocess!r} is unknown; use one of "
                         f"{', '.join(PREPROCESS_MODES)}", param="preprocess")
    if is_torch_model(name):
        from actdb.models.torchnet import torch_spec

        return torch_spec(name, preprocess)
    if is_saved_model(name):
        return saved_spec(name, preprocess)
    spec = find_spec(name)
    if spec is None:
        raise UsageError(f"unknown model {name!r}; `actdb layers` lists the {len(MODELS)} "
                         "Keras models (vgg19, resnet50, inception_v3, ...); or give "
                         "torchvision:NAME, timm:NAME, or a saved model FILE.keras, .pt, .pt2",
                         param="model")
    if preprocess not in (None, "", spec.preprocess):
        raise UsageError(f"{spec.name} has its own preprocessing; leave --preprocess out",
                         param="preprocess")
    return spec


def saved_spec(path: str, preprocess: str | None) -> ModelSpec:
    """The spec of a saved Keras model: its resolved path and preprocessing mode."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UsageError(f"model file {path} not found; give a model saved by Keras "
                         "(model.save('m.keras')) or a registry name", param="model")
    if preprocess not in PREPROCESS_MODES:
        raise UsageError(f"a saved model needs --preprocess {'|'.join(PREPROCESS_MODES)} "
                         "(how its inputs were scaled in training)", param="preprocess")
    return ModelSpec(name=str(file.resolve()), family="saved", preprocess=preprocess,
                     native_size=None, default_layer=None)


class ModelRow(NamedTuple):
    """One registry model, as ``actdb layers`` lists them."""

    model: str
    family: str
    native_size: int
    default_layer: str
    preprocess: str


class LayerRow(NamedTuple):
    """One layer of a network at an input size, as ``actdb layers MODEL`` lists them."""

    index: int
    layer: str
    kind: str
    output_shape: str  # e.g. 14x14x512 (no batch axis; a torch module's: 512x14x14)
    spatial: bool  # an output actdb can pool into vectors (Keras 4-D; torch NCHW or tokens)
    default: bool


def model_rows() -> list[ModelRow]:
    """Every registry model with its native input size and default layer.

    >>> model_rows()[1]
    ModelRow(model='vgg19', family='vgg', native_size=224, default_layer='block5_conv4', \
preprocess='vgg19')
    """
    return [ModelRow(model=s.name, family=s.family, native_size=s.native_size,
                     default_layer=s.default_layer, preprocess=s.preprocess)
            for s in MODELS.values()]


def layer_rows(model: str, *, image_size: int | None = None,
               preprocess: str | None = None) -> list[LayerRow]:
    """The layers of ``model`` (without its classifier) and their output shapes at
    ``image_size`` (default: its native size); no weights are needed. A PyTorch network's
    are its named modules in the order they run (``torchnet.module_rows``)."""
    if is_torch_model(model):
        return _torch_layer_rows(model, image_size, preprocess)
    # listing a saved model's layers does not need its preprocessing
    spec = get_spec(model, preprocess or ("none" if is_saved_model(model) else None))
    size = image_size or spec.native_size or 224
    if spec.saved:
        base = load_saved(spec)
    else:
        base = construct(spec, weights=None, include_top=False, input_shape=(size, size, 3))
    names = layer_names(base, renumber=not spec.saved)
    default = spec.default_layer or last_spatial(dict(zip(names, base.layers, strict=True)))
    return [LayerRow(index=i, layer=name, kind=type(lyr).__name__,
                     output_shape="x".join("?" if d is None else str(d)
                                           for d in lyr.output.shape[1:]),
                     spatial=len(lyr.output.shape) == 4, default=name == default)
            for i, (name, lyr) in enumerate(zip(names, base.layers, strict=True))]


def _torch_layer_rows(model: str, image_size: int | None,
                      preprocess: str | None) -> list[LayerRow]:
    from actdb.models.torchnet import module_rows, poolable, torch_spec

    spec = torch_spec(model, preprocess or ("none" if ":" not in model else None))
    rows = module_rows(spec, image_size or spec.native_size or 224)
    return [LayerRow(index=i, layer=r["name"], kind=r["kind"],
                     output_shape="x".join(map(str, r["shape"])) if r["shape"] else "-",
                     spatial=poolable(r["shape"]), default=r["name"] == spec.default_layer)
            for i, r in enumerate(rows)]


def last_spatial(layers: dict) -> str:
    """The name of the last layer with a 4-D (spatial) output: a saved model's default."""
    spatial = [n for n, lyr in layers.items() if len(lyr.output.shape) == 4]
    if not spatial:
        raise UsageError("the model has no spatial (4-D) layer to embed with", param="model")
    return spatial[-1]


def auto_name(class_name: str) -> str:
    """The name Keras gives an unnamed layer of this class (before its counter).

    >>> auto_name("LayerNormalization")
    'layer_normalization'
    """
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def layer_names(model, renumber: bool = True) -> list[str]:
    """The model's layer names, stable across processes: layers Keras named by a process-wide
    counter (``activation_316``) are numbered by their order in this model (``activation``,
    ``activation_1``, ...), as a fresh process would name them."""
    seen: dict[str, int] = {}
    out = []
    for lyr in model.layers:
        base = auto_name(type(lyr).__name__)
        if renumber and re.fullmatch(rf"{re.escape(base)}(_\d+)?", lyr.name):
            k = seen.get(base, 0)
            seen[base] = k + 1
            out.append(base if k == 0 else f"{base}_{k}")
        else:
            out.append(lyr.name)
    return out


def keras_cache_dir() -> Path:
    """Where Keras caches downloaded weights (``$KERAS_HOME/models`` or ``~/.keras/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def parse_weights(weights: str) -> tuple[str, str | int | None]:
    """Split a weights source into (kind, value): imagenet, saved (a saved model's own),
    ('random', seed) or ('file', path).

    >>> parse_weights("random:3")
    ('random', 3)
    """
    if weights in ("imagenet", "saved"):
        return weights, None
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


def default_weights(spec: ModelSpec, weights: str) -> str:
    """A model's trained weights by their name: ``imagenet`` means a saved model's own.

    >>> default_weights(get_spec("vgg19"), "imagenet")
    'imagenet'
    """
    if spec.saved and weights == "imagenet":
        return "saved"
    if not spec.saved and weights == "saved":
        raise UsageError(f"{spec.name} has no saved weights of its own; use --weights "
                         "imagenet, a Keras weights file, or random:SEED", param="weights")
    return weights


def _download_failure(exc: Exception, spec: ModelSpec) -> WeightsUnavailable:
    """Keras' failed download as one line naming the file to put in its cache."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    fetch = re.match(r"URL fetch failure on (\S+?):? ", text)
    fname = fetch.group(1).rsplit("/", 1)[-1] if fetch else f"the {spec.name} weights file"
    reason = "download failed: " + text.split(" -- ")[-1] if fetch else text
    return WeightsUnavailable(
        f"cannot load ImageNet weights for {spec.name} ({reason}); put {fname} in "
        f"{keras_cache_dir()} or pass --weights FILE (or random:SEED for an untrained net)")


def construct(spec: ModelSpec, **kwargs):
    """A registry network from its Keras constructor; an input size it cannot take is a
    UsageError naming the size (Keras raises a ValueError deep in its shape checks)."""
    try:
        return getattr(heavy.keras().applications, spec.constructor)(**kwargs)
    except ValueError as exc:
        shape = kwargs.get("input_shape")
        if shape is None or "input" not in str(exc).lower():
            raise
        reason = str(exc).split(";")[0].splitlines()[0]
        raise UsageError(f"{spec.name} cannot take {shape[0]}x{shape[1]} px images ({reason}); "
                         "give a larger --image-size", param="image_size") from None


def load_saved(spec: ModelSpec):
    """A user's saved Keras model (``.keras``), uncompiled."""
    import zipfile

    if not zipfile.is_zipfile(spec.name):
        raise UsageError(f"{spec.name} is not a Keras model file: a .keras file is a zip "
                         "archive as model.save('m.keras') writes it", param="model")
    keras = heavy.keras()
    try:
        return keras.saving.load_model(spec.name, compile=False)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot load the model {spec.name} ({reason}); give a model saved "
                         "by Keras 3 (model.save('m.keras'))", param="model") from exc


def load_application(spec: ModelSpec, weights: str, include_top: bool, input_shape=None):
    """Build the network with the requested weights: a Keras application (its classifier
    when ``include_top``, which fixes the native input size), or a saved model.
    """
    kind, value = parse_weights(default_weights(spec, weights))
    if spec.saved:
        model = load_saved(spec)
        build = None
    else:
        kwargs = {"include_top": include_top}
        if not include_top and input_shape is not None:
            kwargs["input_shape"] = tuple(input_shape)
        build = lambda w: construct(spec, weights=w, **kwargs)  # noqa: E731
    if kind == "imagenet":
        try:
            with contextlib.redirect_stdout(sys.stderr):  # Keras prints "Downloading data"
                return build("imagenet")
        except Exception as exc:  # Keras raises a bare Exception on URL fetch failure
            raise _download_failure(exc, spec) from exc
    if kind == "saved":
        return model
    model = build(None) if build else model
    if kind == "random":
        seeded_weights(model, value)
        return model
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
