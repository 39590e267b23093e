"""What ``index.json`` records, as one typed description (autofaiss keeps its
``IndexMetadata`` the same way): how the index was built, the recall it measured, and the
search settings tuning found for each recall level.

The file keeps its flat JSON form (a kind's build parameters, ``nlist``, ``pq_m`` or ``M``,
sit at the top level), so stores written before read the same.

>>> info = IndexInfo.from_dict({"kind": "ivfpq", "metric": "l2", "dim": 8, "ntotal": 10,
...     "nlist": 4, "pq_m": 2, "search": {"nprobe": 1, "k_factor": 2},
...     "operating_points": [{"nprobe": 1, "k_factor": 2, "recall": 0.8, "p50_ms": 0.1},
...                          {"nprobe": 4, "k_factor": 8, "recall": 0.99, "p50_ms": 0.3}]})
>>> info.params, info.setting(0.95), info.setting_for(0.95).p50_ms
({'nlist': 4, 'pq_m': 2}, {'nprobe': 4, 'k_factor': 8}, 0.3)
>>> IndexInfo.from_dict(info.to_dict()) == info
True
>>> info.memory  # estimated, as autofaiss estimates an index before building it
{'resident': 298, 'mapped': 320}
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from actdb.store.store import read_index_info


@dataclass(frozen=True, kw_only=True)
class OperatingPoint:
    """A search setting tuning measured: the kind's knobs (``nprobe``, ``k_factor``,
    ``efSearch``), the recall@50 they reached and their p50 latency. Kept flat in
    ``index.json`` (``{"nprobe": 64, "k_factor": 10, "recall": 0.96, "p50_ms": 1.3}``)."""

    setting: dict
    recall: float
    p50_ms: float

    @classmethod
    def from_dict(cls, d: dict) -> OperatingPoint:
        return cls(setting={k: v for k, v in d.items() if k not in ("recall", "p50_ms")},
                   recall=d["recall"], p50_ms=d["p50_ms"])

    def to_dict(self) -> dict:
        return {**self.setting, "recall": self.recall, "p50_ms": self.p50_ms}


def cheapest(points: list[OperatingPoint], recall: float) -> OperatingPoint | None:
    """The fastest measured setting whose recall reaches ``recall`` (the most accurate one
    when none does; None when nothing was measured)."""
    points = sorted(points, key=lambda p: p.p50_ms)
    if not points:
        return None
    reaching = [p for p in points if p.recall >= recall]
    return reaching[0] if reaching else max(points, key=lambda p: p.recall)


@dataclass(frozen=True, kw_only=True)
class IndexInfo:
    """The description of a store's index (``index.json``)."""

    kind: str
    metric: str
    dim: int
    ntotal: int
    trained_ntotal: int | None = None  # None: as ntotal (an index written before it was kept)
    requested_kind: str = "auto"
    params: dict = field(default_factory=dict)  # the kind's build parameters
    search: dict = field(default_factory=dict)  # the default search setting
    recall_at_50: float = 1.0
    target_recall: float = 0.95
    operating_points: list[OperatingPoint] = field(default_factory=list)
    unreached_recall: list[float] = field(default_factory=list)
    build_seconds: float = 0.0
    tune_seconds: float = 0.0
    config: dict = field(default_factory=dict)  # the IndexConfig it was built with

    @classmethod
    def from_dict(cls, d: dict) -> IndexInfo:
        known = {f.name for f in fields(cls)} - {"params"}
        d = {**d, "operating_points": [OperatingPoint.from_dict(p)
                                       for p in d.get("operating_points", [])]}
        return cls(**{k: v for k, v in d.items() if k in known},
                   params={k: v for k, v in d.items() if k not in known})

    @classmethod
    def of_store(cls, store: Path) -> IndexInfo | None:
        """The description of the store's index, or None when it has none."""
        d = read_index_info(store)
        return None if d is None else cls.from_dict(d)

    def to_dict(self) -> dict:
        """The JSON form (what ``index.json`` holds and ``Space.index()`` returns)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "params"}
        d["operating_points"] = [p.to_dict() for p in self.operating_points]
        return {**d, **self.params}

    def grown(self, ntotal: int, recall_at_50: float | None = None) -> IndexInfo:
        """This description after vectors were added to the index it describes."""
        return replace(self, ntotal=ntotal, trained_ntotal=self.trained,
                       recall_at_50=self.recall_at_50 if recall_at_50 is None else recall_at_50)

    @property
    def trained(self) -> int:
        """How many vectors the index was trained (or built) on."""
        return self.ntotal if self.trained_ntotal is None else self.trained_ntotal

    def setting_for(self, recall: float | None) -> OperatingPoint | None:
        """The cheapest recorded setting that reaches ``recall`` (None: exact search, or
        no recall asked)."""
        if recall is None or self.kind == "flat":
            return None
        return cheapest(self.operating_points, recall)

    def setting(self, recall: float | None = None) -> dict:
        """The search knobs for ``recall`` (the default setting when None)."""
        point = self.setting_for(recall)
        return self.search if point is None else point.setting

    @property
    def memory(self) -> dict:
        """Estimated bytes the loaded index holds in memory (``resident``) and maps from its
        file (``mapped``: the vectors ivfpq re-ranks against), from its kind, size and
        build parameters."""
        from actdb.index.kinds import kind_spec

        return kind_spec(self.kind).memory(self.ntotal, self.dim, self.params)
