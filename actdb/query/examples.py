"""``examples --channel C``: the stored images that excite one channel most.

As OpenAI Microscope showed them: the top-k images by pooled value of channel C, a class
summary of those images, and where each named query falls on that channel's distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actdb.errors import UsageError
from actdb.store.catalog import derived, reads
from actdb.viz.thumbs import stored_file


@dataclass
class ExamplesResult:
    channel: int
    top: object  # DataFrame: rank, image_id, value, class_name, synset, split, path
    classes: object  # DataFrame: class_name, synset, count, share
    queries: object  # DataFrame: name, value, percentile
    channel_mean: float
    channel_max: float
    #: the top images' files, in ``top``'s order (None outside its dataset root), for
    #: their thumbnails
    files: list = field(default_factory=list, repr=False)

    def _repr_html_(self) -> str:
        from actdb.viz.notebook import examples_html

        return examples_html(self)

    def to_dict(self) -> dict:
        def rec(df):
            return df.astype(object).where(df.notna(), None).to_dict("records")

        return {"channel": self.channel, "channel_mean": self.channel_mean,
                "channel_max": self.channel_max, "top": rec(self.top),
                "classes": rec(self.classes), "queries": rec(self.queries)}


def examples(store, channel: int, k: int = 20) -> ExamplesResult:
    """Top-k stored images by pooled activation of ``channel`` (0-based)."""
    dim = store.manifest.dim
    if not 0 <= channel < dim:
        raise UsageError(
            f"channel {channel} out of range; this store's layer has {dim} (0..{dim - 1})")
    if k < 1:
        raise UsageError(f"k must be at least 1, not {k}", param="k")
    with store.reader(views=True) as con:
        top, mean, mx, queries = derived.channel_examples(con, store.space, channel, k)
        where = reads.image_meta(con, top.image_id.to_numpy())
    top.insert(0, "rank", range(1, len(top) + 1))
    cls = (top.groupby(["class_name", "synset"], dropna=False).size().rename("count")
           .reset_index().sort_values("count", ascending=False, kind="stable"))
    cls["share"] = cls["count"] / max(len(top), 1)
    files = [stored_file(r, p) for r, p in zip(where["root"], where["path"], strict=True)]
    return ExamplesResult(channel, top, cls.reset_index(drop=True), queries, mean, mx, files)
