"""Helpers shared by the benchmarks: the machine line, synthetic data, timing."""

from __future__ import annotations

import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

from actdb import heavy

heavy.quiet_imports(True)  # a benchmark owns its process: no TensorFlow notices in its output


def parser(doc: str):
    """An argument parser whose --help shows the script's whole docstring."""
    import argparse

    return argparse.ArgumentParser(description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def machine_line() -> str:
    """CPU model, cores, flags that matter, library versions: printed by every benchmark."""
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    keep = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16",
                        "amx_tile") if f in flags]
    keras = heavy.keras()  # its backend through actdb's quiet import
    backend = keras.backend.backend()
    versions = [f"keras backend {backend}"]
    for mod in ("numpy", "tensorflow", "jax", "torch", "keras", "faiss", "duckdb", "pyarrow"):
        if mod in ("tensorflow", "jax", "torch") and mod != backend:
            continue  # only the backend in use
        try:
            m = __import__(mod)
            versions.append(f"{mod} {getattr(m, '__version__', '?')}")
        except Exception:  # noqa: BLE001
            pass
    try:
        import faiss

        simd = f", faiss SIMD level {faiss.SIMDConfig.get_level_name()}"  # FAISS_SIMD_LEVEL
    except Exception:  # noqa: BLE001
        simd = ""
    return (f"machine: {model}, {os.cpu_count()} cores, flags {' '.join(keep) or 'none'}; "
            + ", ".join(versions) + simd)


def installed_env(cache: Path) -> dict[str, str]:
    """The environment of a new process as a user's install runs it: Python's bytecode
    cached (under ``cache``, so the source tree stays as it is). This workplace sets
    PYTHONDONTWRITEBYTECODE, under which each new process compiled actdb's own modules from
    source, in every cold `actdb` call the benches timed before 2026-12-05."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(cache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def rate(embed, x: np.ndarray, seconds: float) -> float:
    """img/s of ``embed`` on batches of ``x`` over about ``seconds`` (after one warm-up)."""
    embed(x)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds or n == 0:
        embed(x)
        n += len(x)
    return n / (time.perf_counter() - t)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_jpeg_tree(root: Path, classes: int, per_class: int, size=(500, 375), seed=0) -> Path:
    """ImageNet-like JPEGs (ImageNet's median size is about 500x375): smooth colour fields."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        d = root / f"n{10000000 + c:08d}"
        d.mkdir(parents=True, exist_ok=True)
        tint = rng.uniform(40, 215, 3)
        for i in range(per_class):
            small = rng.normal(0, 50, (12, 16, 3)) + tint
            img = Image.fromarray(np.clip(small, 0, 255).astype(np.uint8)).resize(size,
                                                                                 Image.BICUBIC)
            arr = np.asarray(img, np.float64) + rng.normal(0, 8, (size[1], size[0], 3))
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(
                d / f"img_{i:04d}.JPEG", quality=90)
    return root


def sgemm_gflops(n: int = 2048, repeat: int = 5) -> float:
    """numpy float32 matrix-multiply throughput on this machine, best of ``repeat``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def conv_flops(model) -> int:
    """Multiply-add FLOPs (x2) of one forward pass of a Keras model's conv/dense layers."""
    total = 0
    for layer in model.layers:
        cls = type(layer).__name__
        if cls == "Conv2D":
            _, h, w, cout = layer.output.shape
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            total += 2 * h * w * cout * kh * kw * cin
        elif cls == "Dense":
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def synthetic_activations(n: int, dim: int, classes: int, seed: int = 0, chunk: int = 65536,
                          rank: int = 32, spread: float = 0.65):
    """Yield (labels, vectors) chunks that look like pooled post-ReLU activations.

    Non-negative, with low-rank structure shared by all classes (real activations have a low
    intrinsic dimension) and class centres that overlap: ``spread`` sets the same-class /
    random-pair distance ratio (0.65 gives about 0.85, the original study's "not very
    strong" effect). Well-separated blobs would make every index look perfect.
    """
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, dim)) / np.sqrt(rank)
    centres = rng.standard_normal((classes, rank)) * spread
    bias = rng.gamma(2.0, 0.5, dim)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        labels = rng.integers(0, classes, m)
        z = centres[labels] + rng.standard_normal((m, rank))
        x = z @ basis + bias + 0.15 * rng.standard_normal((m, dim))
        yield labels, np.maximum(x, 0).astype(np.float32)


def realistic_activations(n: int, dim: int, classes: int, seed: int = 0, chunk: int = 65536,
                          latent: int = 32, spread: float = 0.70, noise: float = 0.05):
    """Yield (labels, vectors) chunks of a more realistic kind: a class-structured latent of
    ``latent`` dimensions through a random ``dim``-wide ReLU layer, plus a little noise.

    Trained networks' representations have an intrinsic dimension far below their unit count
    and are non-negative and sparse; ``spread`` 0.70 gives a same-class / random-pair distance
    ratio of about 0.85, as in the original study.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, latent)) * spread
    weights = rng.standard_normal((latent, dim)) / np.sqrt(latent)
    bias = rng.normal(0.0, 0.5, dim)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        labels = rng.integers(0, classes, m)
        z = centres[labels] + rng.standard_normal((m, latent))
        x = z @ weights + bias + noise * rng.standard_normal((m, dim))
        yield labels, np.maximum(x, 0).astype(np.float32)
