"""``actdb examples --channel C``: the stored images that excite one channel most.

As OpenAI Microscope showed them: the top-k images by pooled value of channel C, a class
summary of those images, and where each cached query falls on that channel's distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from actdb.errors import QueryError


@dataclass
class ExamplesResult:
    channel: int
    top: pd.DataFrame  # rank, image_id, value, class_name, synset, path
    classes: pd.DataFrame  # class_name, synset, count, share
    queries: pd.DataFrame  # name, value, percentile
    channel_mean: float
    channel_max: float

    def to_dict(self) -> dict:
        def rec(df):
            return df.astype(object).where(df.notna(), None).to_dict("records")

        return {"channel": self.channel, "channel_mean": self.channel_mean,
                "channel_max": self.channel_max, "top": rec(self.top),
                "classes": rec(self.classes), "queries": rec(self.queries)}


def examples(db, channel: int, k: int = 20) -> ExamplesResult:
    """Top-k stored images by pooled activation of ``channel`` (0-based)."""
    dim = db.store.manifest.dim
    if not 0 <= channel < dim:
        raise QueryError(
            f"channel {channel} out of range; this store's layer has {dim} (0..{dim - 1})")
    c = channel + 1  # DuckDB arrays are 1-based
    with db.store.connect() as con:
        top = con.execute(
            f"SELECT a.image_id, a.vec[{c}] AS value, i.class_name, i.synset, i.split, i.path "
            f"FROM activations a JOIN images i USING (image_id) "
            f"ORDER BY value DESC, a.image_id LIMIT ?", [k]).df()
        mean, mx, n = con.execute(
            f"SELECT avg(vec[{c}]), max(vec[{c}]), count(*) FROM activations").fetchone()
        queries = con.execute(
            f"SELECT q.name, q.vec[{c}] AS value, "
            f"(SELECT 100.0 * count(*) FROM activations a WHERE a.vec[{c}] <= q.vec[{c}]) "
            f"/ {max(n, 1)} AS percentile FROM queries q ORDER BY q.name").df()
    top.insert(0, "rank", range(1, len(top) + 1))
    cls = (top.groupby(["class_name", "synset"], dropna=False).size().rename("count")
           .reset_index().sort_values("count", ascending=False, kind="stable"))
    cls["share"] = cls["count"] / max(len(top), 1)
    return ExamplesResult(channel, top, cls.reset_index(drop=True), queries,
                          float(mean or 0.0), float(mx or 0.0))
