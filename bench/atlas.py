"""Atlas benchmark: seconds per channel of the batched feature visualisation at 224 px and the
recipe's default steps, for batches of 1, 8 and 32 channels, fp32 and bf16 (VGG19
block5_conv4, random:0 weights: speed does not depend on their values); the projected time
for all 512 channels (target: <= 8 hours on a 2-core CPU machine); and the rest of an atlas
per channel (three classifiers, nearest images, centroids, examples, heatmaps, the site),
measured end to end on a small store.

A step's time is the median of a run's steps, the first two (tracing, warm-up) left out.

    python bench/atlas.py                        # ~10 min here
    python bench/atlas.py --size 64 --batches 1,2 --steps 4
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from common import machine_line, make_jpeg_tree, parser  # noqa: E402

CHANNELS = 512


def per_step(emb, cfg, batch: int, steps: int, out: Path) -> float:
    """Median seconds of one optimisation step of a batch (the first two steps, which trace
    and warm up, left out)."""
    from dataclasses import replace

    from actdb.featvis.dream import dream_batch

    stamps = []
    chans = list(range(batch))
    dream_batch(replace(cfg, steps=steps), chans, [out / f"{c}.png" for c in chans],
                progress=lambda i, n, v: stamps.append(time.perf_counter()), emb=emb)
    return float(np.median(np.diff(stamps)[1:]))


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--size", type=int, default=224, help="picture size in pixels")
    ap.add_argument("--batches", default="1,8,32", help="channels per batch to time")
    ap.add_argument("--steps", type=int, default=6, help="steps run per setting (the median "
                    "of all but the first two is the step time)")
    ap.add_argument("--precisions", default="fp32,bf16", help="compute precisions to time")
    ap.add_argument("--atlas-channels", type=int, default=8,
                    help="channels of the end-to-end atlas run (0: skip it)")
    args = ap.parse_args()
    import actdb
    from actdb.featvis.dream import DreamConfig, dream_embedder, resolved

    print(machine_line())
    tmp = Path(tempfile.mkdtemp(prefix="actdb-bench-atlas-"))
    default_steps = resolved(DreamConfig()).steps
    best = None
    for precision in args.precisions.split(","):
        cfg = resolved(DreamConfig(weights="random:0", image_size=args.size, precision=precision))
        emb = dream_embedder(cfg)
        for batch in (int(b) for b in args.batches.split(",")):
            step = per_step(emb, cfg, batch, args.steps, tmp)
            per_channel = step * default_steps / batch
            hours = per_channel * CHANNELS / 3600
            print(f"dream {precision} B={batch}: {step:.2f} s/step, {per_channel:.1f} s per "
                  f"channel at {default_steps} steps; all {CHANNELS} channels: {hours:.1f} h")
            best = per_channel if best is None else min(best, per_channel)
    if args.atlas_channels:
        store = tmp / "store"
        root = make_jpeg_tree(tmp / "data", 8, 8)
        db = actdb.open(store)
        db.ingest(root, weights="random:0", image_size=args.size)
        t = time.perf_counter()
        db.space().atlas(f"0-{args.atlas_channels - 1}", image_size=args.size, steps=1, batch=8,
                         precision="auto")
        rest = (time.perf_counter() - t) / args.atlas_channels
        print(f"atlas end to end, 1 step, {args.atlas_channels} channels, 3 classifiers: "
              f"{rest:.1f} s per channel beyond the optimisation's steps")
        total = (best + rest) * CHANNELS / 3600
        print(f"projected atlas of all {CHANNELS} channels with the fastest setting: "
              f"{total:.1f} h (target <= 8 h on this CPU)")


if __name__ == "__main__":
    main()
