"""Feature-visualization benchmark: seconds per optimisation step at 224 px, both recipes,
fp32 and bf16 (VGG19 block5_conv4, random:0 weights; speed does not depend on their values).

    python bench/dream.py              # ~3 min here
    python bench/dream.py --size 64 --steps 3
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, parser  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--size", type=int, default=224, help="image size in pixels")
    ap.add_argument("--steps", type=int, default=8, help="optimisation steps timed per run")
    args = ap.parse_args()
    from actdb.featvis.dream import DreamConfig, dream

    print(machine_line())
    out = Path(tempfile.mkdtemp(prefix="actdb-bench-dream-"))
    per_step = {}
    for recipe in ("seed", "improved"):
        for precision in ("fp32", "bf16"):
            stamps: list[float] = []
            cfg = DreamConfig(weights="random:0", image_size=args.size, steps=args.steps,
                              recipe=recipe, precision=precision)
            res = dream(cfg, out / f"{recipe}-{precision}.png",
                        progress=lambda step, total, value, st=stamps: st.append(
                            time.perf_counter()))
            # the first step includes tracing; time the rest
            s = float(np.median(np.diff(stamps)))
            per_step[(recipe, precision)] = s
            print(f"{recipe} {precision}: {s:.3f} s/step at {args.size}px "
                  f"(objective {res.start_activation:.3g} -> {res.final_activation:.3g})")
    for recipe in ("seed", "improved"):
        ratio = per_step[(recipe, "fp32")] / per_step[(recipe, "bf16")]
        print(f"{recipe}: bf16 speed-up {ratio:.2f}x")


if __name__ == "__main__":
    main()
