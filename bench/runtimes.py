"""Runtimes for the model on this CPU: Keras (TensorFlow) against ONNX Runtime and OpenVINO,
for ingest throughput and for the accuracy of the vectors.

    python bench/runtimes.py                           # VGG19 at 224 px, 128 images (~4 min)
    python bench/runtimes.py --size 32 --images 16 --batch 8 --seconds 1     # smoke size
    python bench/runtimes.py --exports families    # which networks export (~5 min; or all)

For each runtime and precision it prints model-only img/s at --batch (uint8 images in, as the
ingest pipeline feeds them), and against Keras fp32 on the same images: the cosine of the
vectors (mean and minimum) and the overlap of each image's top-k neighbours among the others
(the store-like check, k = --images / 4). Runtimes: Keras fp32 and bf16 (TensorFlow; bf16
where the CPU has it), ONNX Runtime fp32 on the store's exported model, ONNX Runtime int8
(dynamic quantisation of that model), OpenVINO fp32 and bf16 (its CPU plugin, from the same
ONNX file) where OpenVINO is installed. Then the case of a bf16 store whose queries come from
the fp32 ONNX model: the overlap of their neighbours in the bf16 vectors with the bf16 model's
own. Ingest adopts another runtime only where this shows it faster at the stated accuracy.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, make_jpeg_tree, parser, rate  # noqa: E402


def topk(v: np.ndarray, k: int, ref: np.ndarray | None = None) -> np.ndarray:
    """Each row's k nearest other rows (L2) among ``ref`` (default ``v`` itself)."""
    ref = v if ref is None else ref
    d = ((v[:, None, :] - ref[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)]))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)


def openvino_runner(path: Path, precision: str):
    """OpenVINO's CPU plugin on the ONNX file (None when OpenVINO is not installed)."""
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    model = core.compile_model(core.read_model(str(path)), "CPU", {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "PERFORMANCE_HINT": "THROUGHPUT"})
    return lambda x: model(x)[0]


def exports(which: str, tmp: Path) -> None:
    """Export and check each network (the first of each family, or all) at its native size:
    the largest relative difference from Keras fp32, or why ONNX cannot serve it."""
    from actdb.models.embed import EmbedConfig, Embedder
    from actdb.models.onnx import OnnxUnavailable, export
    from actdb.models.registry import MODELS

    names, seen = [], set()
    for name, spec in MODELS.items():
        if which == "all" or spec.family not in seen:
            names.append(name)
            seen.add(spec.family)
    ok = 0
    for name in names:
        emb = Embedder(EmbedConfig(model=name, weights="random:0", precision="fp32"))
        t = time.perf_counter()
        try:
            diff = export(emb, tmp / f"{name}.onnx", emb.fingerprint)
        except OnnxUnavailable as exc:
            print(f"export {name}: refused in {time.perf_counter() - t:.1f} s: {exc}",
                  flush=True)
            continue
        ok += 1
        print(f"export {name}: {time.perf_counter() - t:.1f} s, largest relative difference "
              f"{diff:.1e}, {(tmp / f'{name}.onnx').stat().st_size / 1e6:.0f} MB", flush=True)
        (tmp / f"{name}.onnx").unlink()
    print(f"exports: {ok} of {len(names)} networks served by ONNX Runtime")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--size", type=int, default=224, help="input size in pixels")
    ap.add_argument("--images", type=int, default=128, help="images embedded and compared")
    ap.add_argument("--batch", type=int, default=32, help="images per forward pass")
    ap.add_argument("--seconds", type=float, default=15.0, help="seconds each rate is timed")
    ap.add_argument("--exports", choices=("families", "all"),
                    help="only try the ONNX export of each family's first network, or all")
    args = ap.parse_args()
    import onnxruntime as ort

    from actdb.images import decode_named
    from actdb.models.common import cpu_has_bf16
    from actdb.models.embed import EmbedConfig, Embedder
    from actdb.models.onnx import OnnxEmbedder, export

    print(machine_line() + f", onnxruntime {ort.__version__}")
    tmp = Path(tempfile.mkdtemp(prefix="actdb-bench-onnx-"))
    if args.exports:
        return exports(args.exports, tmp)
    root = make_jpeg_tree(tmp / "data", 8, max(1, args.images // 8))
    x = np.stack([decode_named(p, args.size, "squash") for p in sorted(root.rglob("*.JPEG"))])
    batch = x[: args.batch]
    k = max(1, len(x) // 4)
    keras32 = Embedder(EmbedConfig(weights="random:0", image_size=args.size, precision="fp32"))
    t = time.perf_counter()
    path = tmp / "model.onnx"
    diff = export(keras32, path, keras32.fingerprint)
    print(f"ONNX export and check: {time.perf_counter() - t:.1f} s, largest relative "
          f"difference from Keras fp32 {diff:.1e}; {path.stat().st_size / 1e6:.0f} MB")

    runners = {"Keras fp32": keras32.embed}
    if cpu_has_bf16():
        runners["Keras bf16"] = Embedder(EmbedConfig(weights="random:0", image_size=args.size,
                                                     precision="bf16")).embed
    runners["ONNX Runtime fp32"] = OnnxEmbedder(path, keras32.config,
                                                keras32.fingerprint).embed
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        q8 = tmp / "model.int8.onnx"
        quantize_dynamic(str(path), str(q8), weight_type=QuantType.QInt8)
        runners["ONNX Runtime int8 (dynamic)"] = OnnxEmbedder(q8, keras32.config,
                                                              keras32.fingerprint).embed
    except Exception as exc:  # noqa: BLE001 - a runtime that cannot quantise is reported
        print(f"ONNX Runtime int8: not measured ({type(exc).__name__}: {str(exc)[:120]})")
    for precision in ("fp32", "bf16"):
        run = openvino_runner(path, precision)
        if run is None:
            print("OpenVINO: not installed (pip install openvino), not measured")
            break
        runners[f"OpenVINO {precision}"] = run

    want = keras32.embed(x)
    ref_nn = topk(want, k)
    vecs = {}
    base = None
    for name, embed in runners.items():
        r = rate(embed, batch, args.seconds)
        base = base or r
        got = np.concatenate([np.asarray(embed(x[i:i + args.batch]), np.float32)
                              for i in range(0, len(x), args.batch)])
        vecs[name] = got
        cos = cosine(got, want)
        print(f"{name}: {r:.1f} img/s at batch {args.batch} ({r / base:.2f}x Keras fp32); "
              f"cosine to Keras fp32 mean {cos.mean():.6f}, min {cos.min():.6f}; top-{k} "
              f"overlap {overlap(topk(got, k), ref_nn):.3f}", flush=True)
    if "Keras bf16" in vecs:
        store = vecs["Keras bf16"]
        own = topk(store, k)
        fp32_queries = topk(vecs["ONNX Runtime fp32"], k, store)
        cos = cosine(vecs["ONNX Runtime fp32"], store)
        print(f"bf16 store, queries from the fp32 ONNX model: cosine to the bf16 vectors mean "
              f"{cos.mean():.6f}, min {cos.min():.6f}; top-{k} overlap with the bf16 model's "
              f"own queries {overlap(fp32_queries, own):.3f}")


if __name__ == "__main__":
    main()
