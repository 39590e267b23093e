"""The machine's limit: VGG19's achieved GFLOP/s (fp32 and bf16) next to numpy SGEMM and next
to the vector units' peak, computed from the CPU's flags and clock with the arithmetic shown.

    python bench/machine.py                # ~2 min here
    python bench/machine.py --size 64
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import conv_flops, machine_line, sgemm_gflops  # noqa: E402
from ingest import model_only  # noqa: E402


def cpu_facts() -> tuple[str, set[str], float]:
    model, flags, mhz = "?", set(), 0.0
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, val = line.partition(":")
        key = key.strip()
        if key == "model name":
            model = val.strip()
        elif key == "flags":
            flags = set(val.split())
        elif key == "cpu MHz":
            mhz = max(mhz, float(val))
    return model, flags, mhz


def peak_per_cycle(flags: set[str], vendor_amd: bool) -> tuple[int, int, str]:
    """(fp32 FLOP/cycle/core, bf16 FLOP/cycle/core, how)."""
    if "amx_bf16" in flags:
        return 64, 1024, ("AVX-512: 2 FMA ports x 16 fp32 lanes x 2 = 64; AMX-BF16 tile unit: "
                          "16x32 bf16 x 16 rows per 16 cycles x 2 = 1024 (Intel's figure)")
    if "avx512f" in flags and vendor_amd:
        how = ("Zen 4 AVX-512 runs on 2 x 256-bit FMA pipes: 2 x 8 fp32 lanes x 2 = 32; "
               "AVX512-BF16 (VDPBF16PS) does 2 bf16 products per fp32 lane: 64")
        return 32, (64 if "avx512_bf16" in flags else 32), how
    if "avx512f" in flags:
        return 64, (128 if "avx512_bf16" in flags else 64), "AVX-512: 2 FMA ports x 16 x 2"
    if "fma" in flags:
        return 32, 32, "AVX2: 2 FMA ports x 8 fp32 lanes x 2 = 32; no bf16 unit"
    return 8, 8, "SSE: 4 lanes x 2"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    from actdb.models.embed import EmbedConfig, Embedder

    print(machine_line())
    model, flags, mhz = cpu_facts()
    cores = os.cpu_count() or 1
    f32, b16, how = peak_per_cycle(flags, "AMD" in model.upper())
    ghz = mhz / 1000
    peak32, peak16 = cores * ghz * f32, cores * ghz * b16
    print(f"peak fp32: {cores} cores x {ghz:.2f} GHz x {f32} FLOP/cycle = {peak32:.0f} GFLOP/s")
    print(f"peak bf16: {cores} cores x {ghz:.2f} GHz x {b16} FLOP/cycle = {peak16:.0f} GFLOP/s")
    print(f"  ({how}; clock from /proc/cpuinfo, a VM may report base rather than boost)")
    gemm = sgemm_gflops()
    print(f"numpy SGEMM (2048^3 fp32): {gemm:.1f} GFLOP/s = {100 * gemm / peak32:.0f}% of fp32 "
          "peak")
    best = gemm
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    for prec, peak in (("fp32", peak32), ("bf16", peak16)):
        emb = Embedder(EmbedConfig(weights="random:0", image_size=args.size, precision=prec))
        rate, _ = model_only(emb, images, args.batch)
        g = conv_flops(emb.model) * rate / 1e9
        print(f"VGG19 to block5_conv4 {prec}: {rate:.2f} img/s x "
              f"{conv_flops(emb.model) / 1e9:.2f} GFLOP = {g:.0f} GFLOP/s = "
              f"{100 * g / peak:.0f}% of {prec} peak, {g / gemm:.2f}x numpy SGEMM")
        if prec == "fp32":
            best = max(best, g)
    if best > peak32:
        print(f"fp32 work ran above the peak at the reported clock: the cores run at least "
              f"{best / (cores * f32):.2f} GHz ({best:.0f} / ({cores} x {f32})), i.e. boost")


if __name__ == "__main__":
    main()
