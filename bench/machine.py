"""The machine's limit: VGG19's achieved GFLOP/s (fp32 and bf16) next to numpy SGEMM and next
to the vector units' peak, computed from the CPU's flags and clock with the arithmetic shown.

    python bench/machine.py                # ~2 min here
    python bench/machine.py --size 64
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import conv_flops, machine_line, parser, sgemm_gflops  # noqa: E402
from ingest import model_only  # noqa: E402


def cpu_facts() -> dict:
    """Vendor, family, model, name, flags and the highest clock /proc/cpuinfo reports."""
    facts = {"vendor": "?", "family": -1, "model": -1, "name": "?", "flags": set(), "mhz": 0.0}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, val = (x.strip() for x in line.partition(":"))
        if key == "vendor_id":
            facts["vendor"] = val
        elif key == "cpu family":
            facts["family"] = int(val)
        elif key == "model":
            facts["model"] = int(val)
        elif key == "model name":
            facts["name"] = val
        elif key == "flags":
            facts["flags"] = set(val.split())
        elif key == "cpu MHz":
            facts["mhz"] = max(facts["mhz"], float(val))
    return facts


def microarchitecture(f: dict) -> tuple[str, int, int, str] | None:
    """(name, fp32 FLOP/cycle/core, bf16 FLOP/cycle/core, the arithmetic), or None when this
    CPU is not one whose vector units we know (then no peak is claimed)."""
    flags = f["flags"]
    if f["vendor"] == "GenuineIntel" and "amx_bf16" in flags and "avx512f" in flags:
        # known by its features: a VM may mask the model number (seen here: family 6 model 167)
        return ("Intel Xeon with AMX (Sapphire Rapids or later)", 64, 1024,
                "AVX-512: 2 FMA ports x 16 fp32 lanes x 2 = 64; AMX-BF16: 1024 bf16 "
                "FLOP/cycle (Intel's figure)")
    if f["vendor"] == "AuthenticAMD" and f["family"] == 0x19 and "avx512f" in flags:
        return ("AMD Zen 4", 32, 64 if "avx512_bf16" in flags else 32,
                "AVX-512 on 2 x 256-bit FMA pipes: 2 x 8 fp32 lanes x 2 = 32; AVX512-BF16 "
                "(VDPBF16PS): 2 bf16 products per fp32 lane = 64")
    if f["vendor"] == "AuthenticAMD" and f["family"] == 0x1A and "EPYC" in f["name"]:
        return ("AMD Zen 5 (EPYC: full 512-bit datapaths)", 64,
                128 if "avx512_bf16" in flags else 64,
                "AVX-512 on 2 x 512-bit FMA pipes: 2 x 16 fp32 lanes x 2 = 64; AVX512-BF16: "
                "2 bf16 products per fp32 lane = 128")
    return None


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--size", type=int, default=224, help="input size in pixels")
    ap.add_argument("--images", type=int, default=64, help="random images to embed")
    ap.add_argument("--batch", type=int, default=32, help="images per forward pass")
    args = ap.parse_args()
    from actdb.models.embed import EmbedConfig, Embedder

    print(machine_line())
    facts = cpu_facts()
    cores = os.cpu_count() or 1
    arch = microarchitecture(facts)
    ghz = facts["mhz"] / 1000
    if arch is None:
        print(f"peak unknown: family {facts['family']} model {facts['model']} "
              f"({facts['name']}) is not a CPU whose vector units this script knows")
        peak32 = peak16 = f32 = None
    else:
        name, f32, b16, how = arch
        peak32, peak16 = cores * ghz * f32, cores * ghz * b16
        print(f"microarchitecture: {name}")
        print(f"peak fp32: {cores} cores x {ghz:.2f} GHz x {f32} FLOP/cycle = "
              f"{peak32:.0f} GFLOP/s")
        print(f"peak bf16: {cores} cores x {ghz:.2f} GHz x {b16} FLOP/cycle = "
              f"{peak16:.0f} GFLOP/s")
        print(f"  ({how}; clock from /proc/cpuinfo, a VM may report base rather than boost)")
    gemm = sgemm_gflops()
    print(f"numpy SGEMM (2048^3 fp32): {gemm:.1f} GFLOP/s" + (
        f" = {100 * gemm / peak32:.0f}% of fp32 peak" if peak32 else ""))
    best = gemm
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    for prec, peak in (("fp32", peak32), ("bf16", peak16)):
        emb = Embedder(EmbedConfig(weights="random:0", image_size=args.size, precision=prec))
        rate, _ = model_only(emb, images, args.batch)
        g = conv_flops(emb.model) * rate / 1e9
        share = f"{100 * g / peak:.0f}% of {prec} peak, " if peak else ""
        print(f"VGG19 to block5_conv4 {prec}: {rate:.2f} img/s x "
              f"{conv_flops(emb.model) / 1e9:.2f} GFLOP = {g:.0f} GFLOP/s = "
              f"{share}{g / gemm:.2f}x numpy SGEMM")
        if prec == "fp32":
            best = max(best, g)
    if peak32 and best > peak32:
        print(f"fp32 work ran above the peak at the reported clock: the cores run at least "
              f"{best / (cores * f32):.2f} GHz ({best:.0f} / ({cores} x {f32})), i.e. boost")


if __name__ == "__main__":
    main()
