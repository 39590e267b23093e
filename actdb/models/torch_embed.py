"""Pooled activation vectors from a PyTorch network: the torch side of ``embed``.

A :class:`TorchNetwork` is built once (weights, precision, device); its forward pass reads
any named modules' outputs through forward hooks and stops as soon as the last of them has
run (a module called several times in a pass, such as a ResNet block's ReLU, gives its last
call's output). Pooling is over the spatial positions of an NCHW output, or over the tokens
of an (N, L, C) one (``cls``: the first token), in float32. :class:`TorchEmbedder` answers as
the Keras Embedder does (``config``, ``dim``, ``fingerprint``, ``route``, ``embed``,
``embed_files``, ``write_onnx``), and :class:`TorchLayers` embeds several layers in one pass.

bf16 runs under ``torch.autocast`` (CPU with AVX512-BF16 or AMX, GPU of compute capability 8.0
and up); the model's own preprocessing runs in float32 on the device, from uint8 images.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from actdb.errors import UsageError
from actdb.images import RESIZE_METHODS
from actdb.models.common import (
    POOLS,
    PRECISIONS,
    cpu_has_bf16,
    embed_decoded,
    model_fingerprint,
    uint8_images,
)
from actdb.models.torchnet import (
    SCRIPT_OUTPUT,
    build,
    module_rows,
    poolable,
    program_input,
    torch,
    torch_spec,
)
from actdb.options import EmbedConfig


class _Stop(Exception):
    """Raised by the hook of the last module needed: the rest of the network is skipped."""


def resolve_precision(precision: str) -> str:
    """``auto``: bf16 on a CUDA GPU of compute capability 8.0 and up or a bf16-capable CPU,
    else fp32."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    t = torch()
    if t.cuda.is_available():
        return "bf16" if t.cuda.get_device_capability(0) >= (8, 0) else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def state_sha256(module) -> str:
    """sha256 over a network's parameters and buffers (names, shapes, float32 values)."""
    t = torch()
    h = hashlib.sha256()
    for name, value in module.state_dict().items():
        if not isinstance(value, t.Tensor) or not value.is_floating_point():
            continue
        arr = value.detach().to("cpu", t.float32).contiguous().numpy()
        h.update(name.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


class TorchNetwork:
    """A PyTorch network built once with its weights and precision, on the GPU when there is
    one: what one TorchEmbedder, or several layers' in one pass, read."""

    def __init__(self, config: EmbedConfig):
        t = torch()
        self.spec = spec = torch_spec(config.model, config.preprocess)
        if config.resize not in RESIZE_METHODS:
            raise UsageError(
                f"unknown resize {config.resize!r}; use one of {', '.join(RESIZE_METHODS)}")
        self.size = size = config.image_size or spec.native_size or 224
        if spec.saved and spec.native_size and size != spec.native_size:
            raise UsageError(f"{spec.name} takes {spec.native_size}x{spec.native_size} "
                             f"images; pass --image-size {spec.native_size} or leave it out",
                             param="image_size")
        if size < 32:
            raise UsageError(f"image_size must be at least 32, not {size}", param="image_size")
        self.precision = resolve_precision(config.precision)
        self.device = "cuda" if t.cuda.is_available() else "cpu"
        #: every module as it runs at this size: name -> {kind, shape, calls}
        self.rows = {r["name"]: r for r in module_rows(spec, size)}
        self.module = build(spec, config.weights).to(self.device)
        #: a torch.export program's fixed batch size (None: any)
        self.batch = program_input(spec.name)[0] if spec.name.endswith(".pt2") else None
        self.weights_sha256 = state_sha256(self.module)
        self._modules = dict(self.module.named_modules())
        self._mean = t.tensor(spec.mean, dtype=t.float32, device=self.device).view(1, 3, 1, 1)
        self._std = t.tensor(spec.std, dtype=t.float32, device=self.device).view(1, 3, 1, 1)
        self._lock = threading.Lock()  # hooks are per call: one pass at a time

    def check_layer(self, layer: str, model: str) -> tuple:
        """The output shape of ``layer`` (no batch axis); a UsageError naming close names
        for a module the network lacks or one with nothing to pool."""
        row = self.rows.get(layer)
        if row is None:
            import difflib

            close = difflib.get_close_matches(layer, list(self.rows), n=3, cutoff=0.75)
            hint = f" (close: {', '.join(close)})" if close else ""
            raise UsageError(f"unknown layer {layer!r} for {self.spec.name}{hint}; `actdb "
                             f"layers {model}` lists its {len(self.rows)} modules",
                             param="layer")
        shape = row["shape"]
        if not poolable(shape):
            what = "does not run at inference" if shape is None else f"gives {shape}"
            raise UsageError(f"layer {layer!r} {what}: pick a module with spatial (N, C, H, W) "
                             "or token (N, L, C) outputs", param="layer")
        return shape

    def preprocess(self, images):
        """uint8 NHWC images (a tensor on the device) -> the network's float32 NCHW input."""
        x = images.permute(0, 3, 1, 2).float().contiguous()  # NCHW, as plain torch runs
        if self.spec.bgr:
            x = x.flip(1)
        return (x / self.spec.scale - self._mean) / self._std

    def outputs(self, x, layers: list[str]) -> list:
        """The outputs of ``layers`` (each module's last call) for the network input ``x``,
        the network stopped once they have all run; under autocast for bf16."""
        t = torch()
        if layers == [SCRIPT_OUTPUT] and self.spec.default_layer == SCRIPT_OUTPUT:
            with _autocast(t, self.device, self.precision):
                return [self.module(x)]
        want = {n: self.rows[n]["calls"] for n in layers}
        got: dict[str, object] = {}
        calls = dict.fromkeys(want, 0)

        def hook(name):
            def record(_mod, _inp, out):
                calls[name] += 1
                got[name] = out
                if all(calls[n] >= k for n, k in want.items()):
                    raise _Stop

            return record

        handles = [self._modules[n].register_forward_hook(hook(n)) for n in want]
        try:
            with _autocast(t, self.device, self.precision):
                self.module(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        return [got[n] for n in layers]

    def pooled(self, images: np.ndarray, layers: list[str], pools: list[str]) -> list:
        """Each layer's pooled float32 vectors for a uint8 NHWC batch, from one pass."""
        t = torch()
        n, step = len(images), self.batch or len(images)
        parts = []
        with self._lock, t.inference_mode():
            for i in range(0, n, step):
                part = np.ascontiguousarray(images[i : i + step])
                if self.batch and len(part) < step:  # a fixed-batch program: padded
                    part = np.concatenate([part, np.zeros((step - len(part), *part.shape[1:]),
                                                          part.dtype)])
                x = self.preprocess(t.from_numpy(part).to(self.device))
                outs = self.outputs(x, layers)
                parts.append([pool(o, p).cpu().numpy() for o, p in zip(outs, pools,
                                                                         strict=True)])
        return [np.concatenate([p[j] for p in parts])[:n] for j in range(len(layers))]


def _autocast(t, device: str, precision: str):
    """torch.autocast to bf16 for a bf16 network, else a context that does nothing."""
    import contextlib

    if precision == "bf16":
        return t.autocast(device, dtype=t.bfloat16)
    return contextlib.nullcontext()


def pool(out, how: str):
    """One vector per image, in float32: mean or max over an NCHW output's positions or an
    (N, L, C) output's tokens; ``cls``: a token output's first token."""
    out = out.float()
    if how == "cls":
        if out.dim() != 3:
            raise UsageError("pool cls takes the first token of a token (N, L, C) layer; this "
                             "layer is spatial: use mean or max", param="pool")
        return out[:, 0]
    axes = (2, 3) if out.dim() == 4 else (1,)
    return out.mean(dim=axes) if how == "mean" else out.amax(dim=axes)


class TorchEmbedder:
    """A PyTorch network up to ``layer``, pooled: answers as the Keras Embedder.

    >>> emb = TorchEmbedder(EmbedConfig(model="torchvision:resnet18", layer="layer3",
    ...                                 weights="random:0", image_size=64, precision="fp32"))
    >>> emb.embed(np.zeros((2, 64, 64, 3), np.uint8)).shape
    (2, 256)
    """

    runtime = backend = "torch"

    def __init__(self, config: EmbedConfig, *, network: TorchNetwork | None = None):
        if config.pool not in POOLS:
            raise UsageError(f"unknown pool {config.pool!r}; use one of {', '.join(POOLS)}",
                             param="pool")
        net = self.network = network or TorchNetwork(config)
        spec = self.spec = net.spec
        layer = config.layer or spec.default_layer
        if layer is None:
            raise UsageError(f"{spec.name} has no default layer; name one with --layer "
                             f"(`actdb layers {config.model}` lists them)", param="layer")
        shape = net.check_layer(layer, config.model)
        if config.pool == "cls" and len(shape) != 2:
            raise UsageError(f"pool cls takes a token layer's first token; {layer} is "
                             "spatial: use mean or max", param="pool")
        weights = "saved" if spec.saved and config.weights == "imagenet" else config.weights
        self.config = replace(config, model=spec.name, layer=layer, precision=net.precision,
                              image_size=net.size, weights=weights,
                              preprocess=spec.preprocess if spec.saved else None)
        self.dim = int(shape[0] if len(shape) == 3 else shape[-1])
        self.weights_sha256 = net.weights_sha256

    @property
    def fingerprint(self) -> str:
        """A short hash of everything that decides the vectors (used to key cached queries)."""
        return model_fingerprint(self.config, self.weights_sha256)

    @property
    def route(self) -> str:
        """How the numbers are computed: ``torch-fp32`` or ``torch-bf16``."""
        return f"torch-{self.config.precision}"

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Pooled float32 vectors for a (n, size, size, 3) uint8 RGB batch."""
        c = self.config
        return self.network.pooled(uint8_images(images), [c.layer], [c.pool])[0]

    def embed_files(self, paths: list[str | Path | bytes], batch_size: int = 32,
                    names: list[str] | None = None) -> np.ndarray:
        """Decode and embed image files (or raw bytes) exactly as ingest does."""
        return embed_decoded(self, paths, batch_size, names)

    def write_onnx(self, path: Path) -> None:
        """Export the network up to the layer, pooled, to ONNX at ``path``: uint8 NHWC
        images in (any batch size), float32 vectors out, preprocessing inside."""
        t = torch()
        net, c = self.network, self.config

        class Pooled(t.nn.Module):
            def __init__(self):
                super().__init__()
                self.network = net.module  # its weights become the graph's initializers

            def forward(self, images):
                return pool(net.outputs(net.preprocess(images), [c.layer])[0], c.pool)

        example = t.zeros((2, c.image_size, c.image_size, 3), dtype=t.uint8, device=net.device)
        with net._lock, t.no_grad():
            t.onnx.export(Pooled().eval(), (example,), str(path), input_names=["images"],
                          output_names=["vectors"], dynamo=False,
                          dynamic_axes={"images": {0: "n"}, "vectors": {0: "n"}})


class TorchLayers:
    """Several layers of one PyTorch network in one forward pass: ``members`` are the
    layers' TorchEmbedders, each exactly what it gives alone."""

    def __init__(self, config: EmbedConfig, layers: list[str]):
        if not layers or len(set(layers)) != len(layers):
            raise UsageError("name each layer once, and at least one", param="layers")
        net = TorchNetwork(config)
        self.members = [TorchEmbedder(replace(config, layer=lyr), network=net)
                        for lyr in layers]
        self.config = self.members[0].config
        self._network = net

    def embed(self, images: np.ndarray) -> list[np.ndarray]:
        """Each layer's pooled float32 vectors for a uint8 RGB batch, from one forward pass."""
        cs = [m.config for m in self.members]
        return self._network.pooled(uint8_images(images), [c.layer for c in cs],
                                    [c.pool for c in cs])
