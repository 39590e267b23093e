"""Maps: a 2-D layout of a sample of the store, computed once per (sample, projection) and kept
in the catalog (``maps``, ``map_points``) with its fitted projection (``maps/<map_id>.pkl``),
so that the page, plots, reports and exports reuse it and new queries are placed into it
without recomputing it. A map records the store state it was made from and is *stale* once
images are added or removed; :func:`get_map` then makes it again.

>>> from actdb.store.store import Store
>>> s = Store.open(store)
>>> m = get_map(s, MapSpec.of("pca", per_class=4))
>>> len(m.points), m.current, m.map_id == MapSpec.of("pca", per_class=4).map_id
(12, True, True)
>>> m.place(s.vectors([0])[1]).shape
(1, 2)
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from actdb.errors import QueryError, StoreError, UsageError
from actdb.store.catalog import derived, files, reads, writes
from actdb.store.writer import StoreWriter
from actdb.viz.data import SampleConfig, random_group, sample_vectors
from actdb.viz.projection import AUTO, ProjectionConfig, Projector, auto_method

Stage = Callable[[str], None]
#: The default map's size: enough to see every class's shape, small enough for a browser.
DEFAULT_POINTS = 50_000


@dataclass(frozen=True, kw_only=True)
class MapSpec:
    """What a map is made of: which images (a seeded per-class sample) and which projection.
    Equal specs have equal ``map_id``s."""

    sample: SampleConfig = field(default_factory=SampleConfig)
    projection: ProjectionConfig = field(default_factory=lambda: ProjectionConfig(method=AUTO))
    space: str | None = None  # None: the default space (whose maps kept their ids)

    @classmethod
    def of(cls, method: str = AUTO, per_class: int | None = 100,
           classes: tuple[str, ...] | None = None, random_classes: int = 0,
           seed: int = 0) -> MapSpec:
        return cls(sample=SampleConfig(classes=tuple(classes) if classes else None,
                                       random_classes=random_classes, per_class=per_class,
                                       seed=seed),
                   projection=ProjectionConfig(method=method, seed=seed))

    @classmethod
    def default(cls, n_classes: int, method: str = AUTO, seed: int = 0) -> MapSpec:
        """Every class, at most ``DEFAULT_POINTS`` points (50 a class for ImageNet's 1,000)."""
        per_class = max(1, min(100, DEFAULT_POINTS // max(n_classes, 1)))
        return cls.of(method, per_class=per_class, seed=seed)

    def for_store(self, store) -> MapSpec:
        """This spec for the store's space, its ``auto`` projection resolved by the size of
        its sample (:func:`~actdb.viz.projection.auto_method`)."""
        spec = replace(self, space=None if store.space.is_default else store.space.name)
        if spec.projection.method != AUTO:
            return spec
        method = auto_method(estimated_points(store, spec.sample))
        return replace(spec, projection=replace(spec.projection, method=method))

    @property
    def settings(self) -> dict:
        space = {"space": self.space} if self.space else {}
        return {"sample": asdict(self.sample), "projection": asdict(self.projection), **space}

    @property
    def map_id(self) -> str:
        digest = hashlib.sha1(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()
        return f"{self.projection.method}-{digest[:10]}"


@dataclass
class StoredMap:
    """A map read from the store: its points (DataFrame: image_id, x, y, class_name,
    class_key, path, group) and what places new vectors into it."""

    map_id: str
    method: str
    settings: dict
    store_state: str
    current: bool
    points: pd.DataFrame
    seconds: float
    created_at: object
    store: object = field(repr=False, default=None)
    stored: bool = True  # False: the store was busy or read-only, the map lives in memory
    made: bool = False  # made by this call (not read from the store)
    _projector: Projector | None = field(default=None, repr=False)
    _vectors: np.ndarray | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: the queries shown on the map in a notebook (``Space.map(queries=...)``)
    placed: Placement | None = field(default=None, repr=False)
    _widget: object = field(default=None, repr=False)

    @property
    def widget(self):
        """The map as a notebook widget (anywidget), made once: the queries placed, a
        thumbnail and class on hover, the lasso's selection in :attr:`selected`."""
        with self._lock:
            if self._widget is None:
                from actdb.viz.widget import MapWidget

                self._widget = MapWidget(self, self.placed, self.thumbnail)
            return self._widget

    def _repr_mimebundle_(self, **kwargs):
        try:
            return self.widget._repr_mimebundle_(**kwargs)
        except UsageError as e:  # no anywidget: the text repr, and how to get the map
            return {"text/plain": f"{self!r}\n({e})"}

    @property
    def selected(self) -> pd.DataFrame:
        """The points selected in this map's widget (lasso or box; none before it is
        shown), in the map's order: pass ``image_id`` on to SQL or ``nearest``."""
        ids = self._widget.selected_ids if self._widget is not None else []
        return self.points[self.points.image_id.isin(ids)].reset_index(drop=True)

    def thumbnail(self, image_id: int, size: int = 128) -> bytes:
        """JPEG bytes of a stored image's thumbnail (a grey tile when its file is gone)."""
        from actdb.viz.thumbs import stored_file, thumbnail

        with self.store.reader() as con:
            meta = reads.image_meta(con, np.array([image_id], np.int64), missing_ok=True)
        path = stored_file(meta["root"][0], meta["path"][0])
        return thumbnail(path if path is not None else io.BytesIO(b""), size)

    @property
    def projector(self) -> Projector:
        with self._lock:
            if self._projector is None:
                self._projector = Projector.load(files.map_model_path(self.store.path,
                                                                      self.map_id))
            return self._projector

    def place(self, vecs: np.ndarray) -> np.ndarray:
        """Coordinates (m, 2) of new vectors in this map (the map itself is not changed)."""
        return self.projector.transform(vecs)

    def distances(self, vec: np.ndarray) -> np.ndarray:
        """L2 distance from ``vec`` to every point of the map, in the points' order."""
        with self._lock:
            if self._vectors is None:
                _, self._vectors = self.store.vectors(self.points.image_id.to_numpy())
        diff = self._vectors - np.asarray(vec, np.float32).reshape(1, -1)
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))

    def payload(self) -> tuple[bytes, dict]:
        """The points as one binary payload and its layout (``interactive.encode_points``)."""
        from actdb.viz.interactive import encode_points

        return encode_points(self.points)

    def describe(self) -> dict:
        return {"map_id": self.map_id, "method": self.method, "points": len(self.points),
                "current": self.current, "seconds": self.seconds,
                "created_at": str(self.created_at), **self.settings}


@dataclass
class Placement:
    """Queries placed into a map: ``coords`` (name, x, y) and, when asked, ``distances``
    (queries x map points, L2)."""

    map_id: str
    coords: pd.DataFrame
    distances: np.ndarray | None = None

    @classmethod
    def of(cls, m: StoredMap, qs: list, distances: bool = False) -> Placement:
        vecs = np.stack([q.vec for q in qs])
        xy = m.place(vecs)
        coords = pd.DataFrame({"name": [q.name for q in qs], "x": xy[:, 0], "y": xy[:, 1]})
        d = np.stack([m.distances(v) for v in vecs]) if distances else None
        return cls(m.map_id, coords, d)


def _groups(points: pd.DataFrame, settings: dict) -> np.ndarray:
    """The plot group of each point: its class when named, else "N random classes"."""
    rand = settings.get("random_names") or []
    if not rand:
        return points.class_name.to_numpy(object)
    label = random_group(len(rand))
    return np.where(points.class_name.isin(rand), label, points.class_name).astype(object)


def find_map(store, map_id: str) -> StoredMap | None:
    """The stored map of this id (current or stale), or None."""
    with store.reader() as con:
        rec = derived.map_record(con, map_id)
        if rec is None:
            return None
        state = derived.store_state(con, store.space.name)
        points = derived.map_points(con, map_id)
    if not files.map_model_path(store.path, map_id).is_file():
        return None  # its projection file is gone: make it again
    settings = json.loads(rec["settings"])
    space = settings.get("space") or store.spaces()[0].name  # no space: the default's
    if space != store.space.name:  # its points are another space's vectors
        raise QueryError(f"map {map_id} is a map of the space {space}, not of "
                         f"{store.space.name}; ask it in that space")
    points["group"] = _groups(points, settings)
    return StoredMap(map_id, rec["method"], settings, rec["store_state"],
                     rec["store_state"] == state, points,
                     rec["seconds"], rec["created_at"], store)


def map_state(store, map_id: str) -> tuple[str, bool] | None:
    """(created_at, current) of a stored map, or None: a cheap check of a loaded map."""
    with store.reader() as con:
        rec = derived.map_record(con, map_id)
        state = derived.store_state(con, store.space.name)
        return None if rec is None else (str(rec["created_at"]), rec["store_state"] == state)


def estimated_points(store, sample: SampleConfig) -> int:
    """About how many points a sample holds (exact for every class; named or random
    classes counted as the store's largest), without sampling."""
    with store.reader() as con:
        counts = sorted((int(r[4]) for r in reads.classes(con)), reverse=True)
    if sample.classes or sample.random_classes:
        counts = counts[: len(sample.classes or ()) + sample.random_classes]
    cap = sample.per_class
    return sum(counts if cap is None else (min(n, cap) for n in counts))


def describe_sample(sample: dict, classes: int | None = None) -> str:
    """A map's sample in words, so that two maps of one method can be told apart; random
    classes as many as the store had (``classes``) beside the named ones, not as asked.

    >>> describe_sample({"classes": ["tench"], "random_classes": 10, "per_class": 50})
    'tench + 10 random classes, 50 per class'
    >>> describe_sample({"classes": None, "random_classes": 10, "per_class": 5}, classes=3)
    '3 random classes, 5 per class'
    """
    named = sample.get("classes") or ()
    n = sample.get("random_classes") or 0
    if classes is not None:
        n = min(n, max(classes - len(named), 0))
    classes = ",".join(named) or ("" if sample.get("random_classes") else "every class")
    rand = random_group(n) if n else ""
    per = sample.get("per_class")
    return " + ".join(p for p in (classes, rand) if p) + (
        f", {per} per class" if per else ", every image")


def list_maps(store) -> pd.DataFrame:
    """Every stored map of every space, newest first: the ``space`` it maps, its ``sample``
    in words and projection ``seed`` (what tells two maps of one method apart), and
    ``current`` (False: made before its space last changed)."""
    with store.reader() as con:
        df = derived.maps(con)
        spaces = reads.spaces(con)
        states = {s.name: derived.store_state(con, s.name) for s in spaces}
        n_classes = len(reads.classes(con))
    default = next(s.name for s in spaces if s.is_default)
    settings = [json.loads(s) for s in df.settings]
    df.insert(1, "space", [s.get("space") or default for s in settings])
    df.insert(3, "sample", [describe_sample(s["sample"], n_classes) for s in settings])
    df.insert(4, "seed", [s["projection"]["seed"] for s in settings])
    df["current"] = [states.get(sp) == st
                     for sp, st in zip(df.space, df.store_state, strict=True)]
    return df


def make_map(store, spec: MapSpec, stage: Stage | None = None) -> StoredMap:
    """Sample, fit, and store a map (replacing a stale one of the same spec)."""
    spec = spec.for_store(store)
    say = stage or (lambda _: None)
    t0 = time.perf_counter()
    say("sampling stored vectors")
    with store.reader() as con:
        state = derived.store_state(con, store.space.name)
    s = sample_vectors(store, spec.sample)
    proj = Projector(spec.projection)
    xy = proj.fit(s.vecs, say)
    seconds = round(time.perf_counter() - t0, 3)
    points = pd.DataFrame({"image_id": s.ids, "x": xy[:, 0].astype(np.float32),
                           "y": xy[:, 1].astype(np.float32)})
    settings = {**spec.settings, "named_names": s.named, "random_names": s.random}
    say("storing the map")
    record = {"map_id": spec.map_id, "method": spec.projection.method,
              "settings": json.dumps(settings), "store_state": state, "points": len(points),
              "seconds": seconds}
    try:
        with StoreWriter(store.path) as w:
            proj.save(files.map_model_path(store.path, spec.map_id))
            with w.connect() as con:
                writes.put_map(con, record, points)
    except (StoreError, PermissionError):  # busy or read-only: use it, unstored, this once
        m = None
    else:
        m = find_map(store, spec.map_id)
    if m is None:
        with store.reader() as con:
            meta = reads.image_meta(con, s.ids)
        points = points.assign(class_name=s.labels, class_key=[
            syn or name for syn, name in zip(meta["synset"], s.labels, strict=True)],
            path=meta["path"]).sort_values("image_id", ignore_index=True)
        points["group"] = _groups(points, settings)
        m = StoredMap(spec.map_id, spec.projection.method, settings, state, True, points,
                      seconds, None, store, stored=False)
    m._projector, m.made = proj, True
    return m


def get_map(store, spec: MapSpec, stage: Stage | None = None, build: bool = True
            ) -> StoredMap:
    """The current map of ``spec``: the stored one, else made now (``build=False``: a
    QueryError saying how to make it)."""
    spec = spec.for_store(store)
    m = find_map(store, spec.map_id)
    if m is not None and m.current:
        return m
    if not build:
        what = "is stale (the store changed since)" if m is not None else "does not exist"
        raise QueryError(f"the map {spec.map_id} {what}; make it with actdb map --method "
                         f"{spec.projection.method}")
    return make_map(store, spec, stage)


@dataclass
class MapData:
    """Coordinates of a map's images and of queries placed into it, and how they were made."""

    coords: pd.DataFrame  # kind (image|query), image_id, name, class_name, group, x, y
    method: str
    params: dict

    def save(self, path) -> None:
        """Parquet with the parameters in the schema metadata (to reproduce or re-style)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        t = pa.Table.from_pandas(self.coords, preserve_index=False)
        meta = {**(t.schema.metadata or {}), b"actdb": json.dumps(
            {"method": self.method, **self.params}, default=str).encode()}
        pq.write_table(t.replace_schema_metadata(meta), path)


def map_data(store, qs: list, spec: MapSpec, stage: Stage | None = None) -> MapData:
    """The stored map of ``spec`` (made when missing or stale) with the (resolved) queries
    placed into it."""
    m = get_map(store, spec, stage)
    p = m.points
    img = pd.DataFrame({"kind": "image", "image_id": p.image_id, "name": None,
                        "class_name": p.class_name, "group": p.group,
                        "x": p.x.astype(np.float64), "y": p.y.astype(np.float64)})
    coords = img
    if qs:
        qc = m.place(np.stack([q.vec for q in qs]))
        qdf = pd.DataFrame({"kind": "query", "image_id": None, "name": [q.name for q in qs],
                            "class_name": None, "group": "query", "x": qc[:, 0],
                            "y": qc[:, 1]})
        coords = pd.concat([img, qdf], ignore_index=True)
    man = store.manifest
    params = {**m.settings, "map_id": m.map_id, "model": man.model, "layer": man.layer,
              "pool": man.pool}
    return MapData(coords, m.method, params)
