"""PyTorch networks by name or file: torchvision's and timm's classification models and a
user's TorchScript (``.pt``) or ``torch.export`` (``.pt2``) file, with their preprocessing,
native input size, default layer and named modules, and how their weights load.

Names follow the Keras rule: any spelling of a zoo's name (``torchvision:GoogLeNet``,
``timm:resnet-18``). Preprocessing is each zoo's own: torchvision's weights' transforms and
timm's pretrained config give the mean, std and input size (images are decoded and resized by
actdb, as for every network, so queries match). A module's output is read as NCHW (4-D) or
tokens (N, L, C; 3-D). Default layers are each network's last convolutional stage: the last
top-level module with a spatial output (googlenet ``inception5b``, resnet ``layer4``), VGG and
AlexNet the last ReLU of ``features`` (as Keras' ``block5_conv4``: before the pooling), a
vision transformer's ``encoder``, a timm model's last feature stage.

Weights: ``imagenet`` through the zoo's own cache (torch hub's ``checkpoints`` folder, timm's
Hugging Face cache), a state dict ``FILE`` (``.pth``, ``.pt``, ``.safetensors``) for the named
architecture, or ``random:SEED``: the zoo's initialisation drawn from a generator seeded with
SEED, in a fork of torch's random state (the process's own is as it was after), so every
process builds the same weights. Never a silent fallback: a failure is WeightsUnavailable.

A TorchScript file has one layer, ``output``: its forward's result (hooks never run inside a
compiled graph), so save the model cut where you want to read it, or as a ``torch.export``
program, whose modules keep their names. A program exported for a fixed batch size is run
that many images at a time.

A zoo network's shapes are found on PyTorch's ``meta`` device (no weights, no arithmetic), so
listing the layers of a large network is instant.
"""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

from actdb import heavy
from actdb.errors import UsageError, WeightsUnavailable
from actdb.models.common import PREPROCESS_MODES, TORCH_FILES, ModelSpec

#: A TorchScript model's one layer: its forward's output (its modules' hooks never run
#: inside the compiled graph)
SCRIPT_OUTPUT = "output"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_POOLING = ("AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d", "AdaptiveMaxPool2d")
#: a saved model's scaling by --preprocess mode (keras.applications.imagenet_utils' modes)
_MODES = {
    "torch": {"scale": 255.0, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    "tf": {"scale": 127.5, "mean": (1.0, 1.0, 1.0), "std": (1.0, 1.0, 1.0)},
    "caffe": {"scale": 1.0, "mean": (103.939, 116.779, 123.68), "std": (1.0, 1.0, 1.0),
              "bgr": True},
    "none": {"scale": 1.0},
}


def _refuse_a_crash(module: str) -> None:
    """A UsageError instead of a segmentation fault: importing ``module`` (torchvision, timm
    or torch's compiler, which load triton) after TensorFlow (``heavy.triton_first``)."""
    import importlib.util
    import sys

    if (module not in sys.modules and "tensorflow" in sys.modules
            and importlib.util.find_spec("triton") is not None and not heavy.triton_loaded()):
        raise UsageError(f"TensorFlow was imported before PyTorch's triton in this process, "
                         f"and importing {module} now would crash it: start a new process "
                         "and use PyTorch networks before importing tensorflow yourself "
                         "(actdb loads triton first)", param="model")


def torch():
    """The torch module, or a UsageError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise UsageError("PyTorch networks need torch: pip install 'actdb[torch]'",
                         param="model") from None
    return torch


def _zoo(name: str):
    _refuse_a_crash(name)
    try:
        if name == "timm":
            import timm

            return timm
        import torchvision

        return torchvision
    except ImportError:
        raise UsageError(f"{name} models need {name}: pip install 'actdb[torch]'",
                         param="model") from None


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


@functools.cache
def _names(zoo: str) -> dict[str, str]:
    if zoo == "timm":
        names = _zoo("timm").list_models()
    else:
        tv = _zoo("torchvision")
        names = tv.models.list_models(module=tv.models)
    return {_key(n): n for n in names}


def _canonical(zoo: str, name: str) -> str:
    """A zoo's own spelling of ``name`` (a timm name keeps its pretrained tag)."""
    arch, dot, tag = name.partition(".")
    found = _names(zoo).get(_key(arch))
    if found is None:
        raise UsageError(f"unknown model {zoo}:{name}; {zoo} has {len(_names(zoo))} "
                         f"classification models (e.g. {zoo}:resnet18)", param="model")
    return found + dot + tag


def torch_spec(name: str, preprocess: str | None = None) -> ModelSpec:
    """The spec of a torchvision or timm model by name, or of a PyTorch model file (which
    needs ``preprocess``, one of PREPROCESS_MODES).

    >>> spec = torch_spec("torchvision:GoogLeNet")
    >>> spec.name, spec.native_size, spec.default_layer
    ('torchvision:googlenet', 224, 'inception5b')
    """
    zoo, sep, arch = name.partition(":")
    if sep and zoo.lower() in ("torchvision", "timm"):
        if preprocess not in (None, ""):
            raise UsageError(f"{name} has its own preprocessing; leave --preprocess out",
                             param="preprocess")
        return _zoo_spec(f"{zoo.lower()}:{_canonical(zoo.lower(), arch)}")
    return _file_spec(name, preprocess)


@functools.cache
def _zoo_spec(name: str) -> ModelSpec:
    zoo, _, arch = name.partition(":")
    if zoo == "timm":
        cfg = _on_meta(lambda: _zoo("timm").create_model(arch, pretrained=False)).pretrained_cfg
        size = int(cfg.get("input_size", (3, 224, 224))[-1])
        mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    else:
        tv = _zoo("torchvision")
        t = tv.models.get_model_weights(arch).DEFAULT.transforms()
        size, mean, std = int(t.crop_size[0]), tuple(t.mean), tuple(t.std)
    family = re.split(r"[\d_]", arch)[0]
    spec = ModelSpec(name=name, family=f"{zoo}:{family}", constructor=arch, preprocess=zoo,
                     native_size=size, framework="torch", mean=mean, std=std)
    rows = module_rows(spec, size)
    return ModelSpec(**{**spec.__dict__, "default_layer": _default_layer(spec, rows)})


def _file_spec(path: str, preprocess: str | None) -> ModelSpec:
    file = Path(path).expanduser()
    if not file.is_file():
        raise UsageError(f"model file {path} not found; give a TorchScript file "
                         "(torch.jit.save) or a torch.export program (torch.export.save), or "
                         "torchvision:NAME / timm:NAME", param="model")
    if file.suffix.lower() not in TORCH_FILES:
        raise UsageError(f"{path} is not a PyTorch model file (.pt, .pt2)", param="model")
    if preprocess not in PREPROCESS_MODES:
        raise UsageError(f"a saved model needs --preprocess {'|'.join(PREPROCESS_MODES)} "
                         "(how its inputs were scaled in training)", param="preprocess")
    name = str(file.resolve())
    size = program_input(name)[1] if name.endswith(".pt2") else None
    return ModelSpec(name=name, family="saved", preprocess=preprocess, native_size=size,
                     default_layer=None if name.endswith(".pt2") else SCRIPT_OUTPUT,
                     framework="torch", **_MODES[preprocess])


def program_input(path: str) -> tuple[int | None, int | None]:
    """The batch size and square input size a ``.pt2`` program was exported for (None where
    it was exported dynamic)."""
    program = _load_export(path)
    first = program.graph_signature.user_inputs[0]
    node = next(n for n in program.graph.nodes if n.name == first)
    dims = [d if isinstance(d, int) else None for d in node.meta["val"].shape]
    return dims[0], (dims[2] if dims[2] == dims[3] else None)


def _load_export(path: str):
    file = Path(path)
    st = file.stat()
    return _read_export(str(file), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=2)
def _read_export(path: str, _mtime: int, _size: int):
    try:
        return torch().export.load(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's
        raise UsageError(f"cannot load {path} as a torch.export program ({_first(exc)}); "
                         "save it with torch.export.save", param="model") from exc


def _first(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


def _on_meta(make):
    """``make()`` on torch's meta device (no memory, no arithmetic), warnings of the zoo's
    constructors silenced; on the CPU, torch's random state as it was after, for the few
    whose initialisation reads a tensor's values (regnet)."""
    t = torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with t.device("meta"):
                return make()
        except NotImplementedError:
            with t.random.fork_rng(devices=[]):
                return make()


def _construct(spec: ModelSpec, weights=None):
    """A zoo's architecture (``weights``: torchvision's weights enum, or True for timm's)."""
    zoo, _, arch = spec.name.partition(":")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # googlenet's init notice and the like
        if zoo == "timm":
            return _zoo("timm").create_model(arch, pretrained=bool(weights))
        return _zoo("torchvision").models.get_model(arch, weights=weights)


def module_rows(spec: ModelSpec, size: int) -> list[dict]:
    """Every named module of the network in the order it first runs at ``size`` px: name,
    kind, output shape (no batch axis; None when it did not run or gave no tensor) and calls.
    Found on the meta device for zoo models, on the CPU for a file."""
    t = torch()
    module = _on_meta(lambda: _construct(spec)) if not spec.saved else load_file(spec)
    module.eval()
    device = next(iter(module.parameters()), t.zeros(0)).device
    batch = program_input(spec.name)[0] if spec.name.endswith(".pt2") else 1
    if spec.default_layer == SCRIPT_OUTPUT:  # TorchScript: its output, nothing inside
        with t.no_grad():
            out = module(t.zeros((batch or 1, 3, size, size)))
        return [{"name": SCRIPT_OUTPUT, "kind": type(module).__name__, "calls": 1,
                 "shape": tuple(out.shape[1:]) if isinstance(out, t.Tensor) else None}]
    seen: dict[str, dict] = {}
    names = {m: n for n, m in module.named_modules() if n}

    def started(mod, _inp):  # a module is listed where it starts (a block before its parts)
        seen.setdefault(names[mod], {"calls": 0, "shape": None})

    def hook(mod, _inp, out):
        row = seen[names[mod]]
        row["calls"] += 1
        row["shape"] = tuple(out.shape[1:]) if isinstance(out, t.Tensor) else None

    handles = [h for m in names for h in (m.register_forward_pre_hook(started),
                                          m.register_forward_hook(hook))]
    try:
        x = t.zeros((batch or 1, 3, size, size), device=device)
        with t.no_grad():
            module(x)
    except Exception as exc:  # noqa: BLE001 - a size the network cannot take
        raise UsageError(f"{spec.name} cannot take {size}x{size} px images ({_first(exc)}); "
                         "give another --image-size", param="image_size") from exc
    finally:
        for h in handles:
            h.remove()
    kinds = {n: type(m).__name__ for m, n in names.items()}
    ran = [{"name": n, "kind": kinds[n], **row} for n, row in seen.items()]
    idle = [{"name": n, "kind": type(m).__name__, "calls": 0, "shape": None}
            for m, n in names.items() if n not in seen]
    return ran + idle


def poolable(shape) -> bool:
    """A module output actdb pools into one vector: NCHW (4-D) or tokens (3-D)."""
    return shape is not None and len(shape) in (2, 3)


def _default_layer(spec: ModelSpec, rows: list[dict]) -> str | None:
    arch = spec.constructor
    names = [r["name"] for r in rows]
    if spec.name.startswith("timm:"):
        info = getattr(_on_meta(lambda: _construct(spec)), "feature_info", None)
        if info:
            last = info[-1]
            return last["module"] if isinstance(last, dict) else info.module_name()[-1]
    if re.match(r"(vgg|alexnet)", arch):
        relus = [r["name"] for r in rows if r["kind"] == "ReLU"
                 and r["name"].startswith("features.")]
        return relus[-1] if relus else None
    if "encoder" in names and arch.startswith("vit"):
        return "encoder"
    top = [r for r in rows if "." not in r["name"] and r["shape"] is not None
           and len(r["shape"]) == 3 and r["shape"][1] > 1 and r["kind"] not in _POOLING]
    return top[-1]["name"] if top else None


def load_file(spec: ModelSpec):
    """A user's PyTorch model: TorchScript (``.pt``: one layer, its output) or a
    torch.export program (``.pt2``, unflattened so that its modules keep their names and
    their hooks run), on the CPU."""
    t = torch()
    _refuse_a_crash("torch._dynamo")
    if spec.name.endswith(".pt2"):
        return t.export.unflatten(_load_export(spec.name))
    try:
        return t.jit.load(spec.name, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's
        raise UsageError(f"cannot load {spec.name} as TorchScript ({_first(exc)}); save it "
                         "with torch.jit.save, or give a state dict as --weights FILE with "
                         "--model torchvision:NAME", param="model") from exc


def hub_checkpoint(url: str) -> Path:
    """Where torch hub keeps the file of ``url`` (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch().hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def build(spec: ModelSpec, weights: str):
    """The network with its weights, in eval mode without gradients; see the module for
    ``weights``. WeightsUnavailable when they cannot be loaded, in one line naming the fix."""
    t = torch()
    if spec.saved:
        if weights not in ("imagenet", "saved"):
            raise UsageError(f"{spec.name} holds its own weights; leave --weights out",
                             param="weights")
        module = load_file(spec)
    elif weights == "imagenet":
        module = _pretrained(spec)
    elif weights.startswith("random:"):
        try:
            seed = int(weights.split(":", 1)[1])
        except ValueError:
            raise UsageError(f"bad weights {weights!r}: use random:SEED with an integer SEED",
                             param="weights") from None
        with t.random.fork_rng(devices=[]):
            t.manual_seed(seed)
            module = _construct(spec)
    else:
        with t.random.fork_rng(devices=[]):
            t.manual_seed(0)
            module = _construct(spec)
        load_state(module, weights, spec)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _pretrained(spec: ModelSpec):
    zoo, _, arch = spec.name.partition(":")
    fix = "or pass --weights FILE (a state dict; random:SEED for an untrained net)"
    if zoo == "timm":
        try:
            return _construct(spec, weights=True)
        except Exception as exc:  # noqa: BLE001 - timm raises what its hub client raises
            cfg = _on_meta(lambda: _construct(spec)).pretrained_cfg
            where = cfg.get("hf_hub_id") or cfg.get("url") or arch
            raise WeightsUnavailable(
                f"cannot load ImageNet weights for {spec.name} ({_first(exc)}); put {where}'s "
                "model.safetensors in the Hugging Face cache ($HF_HOME/hub) " + fix) from exc
    enum = _zoo("torchvision").models.get_model_weights(arch).DEFAULT
    file = hub_checkpoint(enum.url)
    try:
        return _construct(spec, weights=enum)
    except Exception as exc:  # noqa: BLE001 - urllib's and the hash check's errors alike
        raise WeightsUnavailable(
            f"cannot load ImageNet weights for {spec.name} ({_first(exc)}); put {file.name} "
            f"in {file.parent} " + fix) from exc


def classifier(spec: ModelSpec, weights: str):
    """A zoo network's ImageNet-1k classifier as a function: float32 RGB images (N, H, W, 3)
    in 0..255 -> softmax probabilities (N, 1000), float64."""
    import numpy as np

    if spec.saved:
        raise UsageError(f"predict runs zoo classifiers; {spec.name} is a model file",
                         param="models")
    t = torch()
    module = build(spec, weights)
    mean = t.tensor(spec.mean).view(1, 3, 1, 1)
    std = t.tensor(spec.std).view(1, 3, 1, 1)

    def probabilities(x):
        with t.inference_mode():
            y = (t.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))) / spec.scale
                 - mean) / std
            logits = module(y)
        if logits.shape[-1] != 1000:
            raise UsageError(f"{spec.name} has {logits.shape[-1]} classes, not ImageNet-1k's "
                             "1000; predict reads ImageNet-1k heads", param="models")
        return t.softmax(logits.double(), dim=-1).numpy()

    return probabilities


def load_state(module, path: str, spec: ModelSpec) -> None:
    """Load a state dict file into ``module`` (strict: every key, every shape); a classifier's
    auxiliary heads that the file lacks (googlenet, inception_v3) are dropped, as torchvision
    does for its own weights."""
    t = torch()
    file = Path(path).expanduser()
    if not file.is_file():
        raise UsageError(f"weights file {path!r} not found; use --weights imagenet, a state "
                         "dict file, or random:SEED", param="weights")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file as read

            state = read(str(file))
        else:
            state = t.load(str(file), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        missing = set(module.state_dict()) - set(state)
        aux = {k.split(".", 1)[0] for k in missing}
        if missing and aux <= {"aux1", "aux2", "AuxLogits"}:
            for name in aux:
                setattr(module, name, None)
            if hasattr(module, "aux_logits"):
                module.aux_logits = False
        module.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 - pickle, safetensors and key errors alike
        raise WeightsUnavailable(f"weights file {file} does not fit {spec.name} "
                                 f"({_first(exc)}); pass a state dict saved from "
                                 f"{spec.name}") from exc

