"""``actdb ingest``: reader (layout + decoders) -> mapper (model) -> writer (store).

This module is the one driver: it checks the options, finds the layout and the images, then
hands the images not yet in the store to an engine (``engine.LocalEngine``, or the Ray
engine), which produces their vectors in listing order; the driver assigns ids, commits a
shard every ``rows_per_shard`` images (so a killed run loses at most one shard of work and
resumes where it stopped), records failures and the run, and refreshes the index and the
statistics. Locally, decoding runs ahead of the model in a pool of threads (TensorFlow and
Pillow release the GIL; enough when the CPU also runs the model) or of worker processes (to
feed a GPU: Pillow decodes a few hundred images a second per core).

Most callers use ``actdb.open(store).ingest(root, ...)``; underneath, for example::

    ingest(IngestConfig(root="imagenet/", store="s", embed=EmbedConfig(weights="random:0")))
"""

from __future__ import annotations

import collections
import hashlib
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from actdb.errors import IngestFailed, StoreMismatch, UsageError
from actdb.ingest.datasets import DATASETS, fetch
from actdb.ingest.engine import DECODERS, Embedded, LocalEngine, RayConfig
from actdb.ingest.layout import SPLITS, ImageEntry, detect_layout
from actdb.models.classes import CLASS_INDEX_VERSION
from actdb.models.embed import EmbedConfig, Embedder, backend
from actdb.stats import refresh
from actdb.store.catalog import reads
from actdb.store.catalog.files import manifest_path
from actdb.store.catalog.schema import FailureRow, ImageRow
from actdb.store.manifest import Manifest, mismatch, read_manifest
from actdb.store.store import Store
from actdb.store.writer import StoreWriter

#: progress(done, total): called after every batch.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, kw_only=True)
class IngestConfig:
    """Everything ``actdb ingest`` takes."""

    root: str | Path
    store: str | Path
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    per_class: int | None = None
    limit: int | None = None
    seed: int = 0
    split: str | None = None
    batch_size: int | None = None  # None: 32 on a CPU, 256 on a GPU
    strict: bool = False
    shard: str | None = None  # "K/N", K in 1..N
    rows_per_shard: int = 1024
    workers: int | None = None  # None: 4 threads, or cores - 1 processes
    decoders: str = "auto"  # threads | processes | auto (processes when a GPU runs the model)
    build_index: bool = True
    compute_stats: bool = True
    engine: str = "local"  # local | ray
    ray: RayConfig | None = None  # engine ray: how it uses the cluster (None: as it finds it)

    @classmethod
    def of(cls, root: str | Path, store: str | Path, **options) -> IngestConfig:
        """A config from options by name: the recipe's (:class:`EmbedConfig`'s, over the
        store's own recipe: :func:`store_recipe`) and the run's (this class's other fields).
        """
        run = {f.name for f in fields(cls)} - {"root", "store", "embed", "ray"}
        unknown = set(options) - set(RECIPE) - run - set(RAY_OPTIONS)
        if unknown:
            raise UsageError(f"unknown ingest option(s): {', '.join(sorted(unknown))}")
        embed = store_recipe(store, {k: v for k, v in options.items() if k in RECIPE})
        ray = {RAY_OPTIONS[k]: v for k, v in options.items() if k in RAY_OPTIONS}
        return cls(root=root, store=store, embed=embed, ray=RayConfig(**ray) if ray else None,
                   **{k: v for k, v in options.items() if k in run})


@dataclass
class IngestResult:
    """The run's summary."""

    store: str
    layout: str
    layout_notes: list[str]
    run_id: int
    total: int
    ingested: int
    skipped: int
    failed: int
    failures: list[tuple[str, str]]
    seconds: float
    precision: str
    index: dict | None = None
    stats: dict | None = None

    @property
    def images_per_s(self) -> float:
        return self.ingested / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["images_per_s"] = round(self.images_per_s, 3)
        d["failures"] = [{"path": p, "reason": r} for p, r in self.failures]
        return d


def parse_shard(spec: str) -> tuple[int, int]:
    """``"2/3"`` -> (2, 3); K is 1-based.

    >>> parse_shard("2/3")
    (2, 3)
    """
    try:
        k, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise UsageError(f"bad shard {spec!r}: use K/N, e.g. 1/3", param="shard") from None
    if not 1 <= k <= n:
        raise UsageError(f"bad shard {spec!r}: K must be between 1 and N", param="shard")
    return k, n


def validate(cfg: IngestConfig) -> None:
    """Refuse options no ingest can honour, naming the parameter."""
    if cfg.split is not None and cfg.split not in SPLITS:
        raise UsageError(f"split must be one of {', '.join(SPLITS)}, not {cfg.split!r}",
                         param="split")
    for name in ("batch_size", "rows_per_shard", "workers", "per_class", "limit"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise UsageError(f"{name} must be at least 1, not {value}", param=name)
    if cfg.shard:
        parse_shard(cfg.shard)
    if cfg.decoders not in DECODERS:
        raise UsageError(f"decoders must be one of {', '.join(DECODERS)}, not {cfg.decoders!r}",
                         param="decoders")
    if cfg.engine not in ENGINES:
        raise UsageError(f"engine must be one of {', '.join(ENGINES)}, not {cfg.engine!r}",
                         param="engine")
    if cfg.engine == "local" and cfg.ray not in (None, RayConfig()):
        raise UsageError("ray_address, actors, actor_cpus and actor_gpus need engine ray")


def in_shard(path: str, k: int, n: int) -> bool:
    """Deterministic 1/N split by a hash of the relative path (every worker agrees)."""
    return int(hashlib.sha1(path.encode()).hexdigest()[:12], 16) % n == k - 1


def select_entries(entries: list[ImageEntry], cfg: IngestConfig) -> list[ImageEntry]:
    """Apply --split, --shard, --per-class and --limit (seeded, order-preserving)."""
    out = [e for e in entries if cfg.split is None or e.split == cfg.split]
    if cfg.shard:
        k, n = parse_shard(cfg.shard)
        out = [e for e in out if in_shard(e.path, k, n)]
    if cfg.per_class is not None:  # N of each class, across the selected splits
        groups: dict[str, list[int]] = collections.defaultdict(list)
        for i, e in enumerate(out):
            groups[e.synset or e.class_name].append(i)
        keep = []
        for key, idx in groups.items():
            rng = np.random.default_rng([cfg.seed, zlib.crc32(repr(key).encode())])
            chosen = idx if len(idx) <= cfg.per_class else rng.choice(idx, cfg.per_class, False)
            keep.extend(int(i) for i in chosen)
        out = [out[i] for i in sorted(keep)]
    if cfg.limit is not None and len(out) > cfg.limit:
        chosen = np.random.default_rng(cfg.seed).choice(len(out), cfg.limit, replace=False)
        out = [out[i] for i in sorted(chosen)]
    return out


ENGINES = ("local", "ray")


class _Commits:
    """Embedded rows -> committed shards (with their failures). Ids are assigned in listing
    order as rows arrive; what is not committed when a run dies is simply lost, and the next
    run assigns the same ids again."""

    def __init__(self, writer: StoreWriter, root: str, next_id: int, dim: int):
        self.w, self.root, self.next_id, self.dim = writer, root, next_id, dim
        self.ids: list[int] = []
        self.vecs: list[np.ndarray] = []
        self.rows: list[ImageRow] = []
        self.pending_failures: list[FailureRow] = []
        self.failures: list[tuple[str, str]] = []
        self.ingested = 0

    def add(self, r: Embedded) -> None:
        e = r.entry
        if r.error is not None:
            self.failures.append((e.path, r.error))
            self.pending_failures.append(FailureRow(
                root=self.root, path=e.path, split=e.split, synset=e.synset,
                class_name=e.class_name, reason=r.error))
            return
        self.ids.append(self.next_id)
        self.vecs.append(r.vec)
        self.rows.append(ImageRow(
            image_id=self.next_id, root=self.root, path=e.path, split=e.split,
            synset=e.synset, class_name=e.class_name, class_index=e.class_index,
            width=r.width, height=r.height, bytes=r.nbytes))
        self.next_id += 1

    def commit(self) -> None:
        """Write the shard and its rows, and the failures, in one commit."""
        if not self.rows and not self.pending_failures:
            return
        vecs = np.asarray(self.vecs, np.float32).reshape(len(self.ids), self.dim)
        self.w.commit(np.asarray(self.ids, np.int64), vecs, self.rows, self.pending_failures)
        self.ingested += len(self.rows)
        self.ids, self.vecs, self.rows, self.pending_failures = [], [], [], []


def _manifest(emb: Embedder) -> Manifest:
    from actdb.version import __version__

    c = emb.config
    return Manifest(
        model=c.model, layer=c.layer, pool=c.pool, dim=emb.dim, image_size=c.image_size,
        resize=c.resize, precision=c.precision, weights=c.weights, preprocess=c.preprocess,
        weights_sha256=emb.weights_sha256, fingerprint=emb.fingerprint,
        class_index_version=CLASS_INDEX_VERSION, actdb_version=__version__,
    )


def _check_cheap(store: Path, ec: EmbedConfig) -> EmbedConfig:
    """Refuse a mismatching store before building a model; resolve ``auto`` to its precision."""
    if not manifest_path(store).exists():
        return ec
    from actdb.models.registry import get_spec

    m = read_manifest(store)
    if ec.precision == "auto":
        ec = replace(ec, precision=m.precision)
    spec = get_spec(ec.model, ec.preprocess)
    mine = {"model": spec.name, "layer": ec.layer or spec.default_layer, "pool": ec.pool,
            "image_size": ec.image_size or spec.native_size, "resize": ec.resize,
            "precision": ec.precision}
    diff = [f"{k}: {getattr(m, k)} != {v}" for k, v in mine.items()
            if v is not None and getattr(m, k) != v]
    if diff:
        raise mismatch(f"the store at {store}", diff)
    return ec


#: The recipe options of an ingest: a new store takes them (or EmbedConfig's defaults), a
#: store that exists is their default.
RECIPE = tuple(f.name for f in fields(EmbedConfig))
#: The Ray engine's options by the names ``ingest`` takes them (``RayConfig``'s fields).
RAY_OPTIONS = {"ray_address": "address", "actors": "actors", "actor_cpus": "actor_cpus",
               "actor_gpus": "actor_gpus"}


def store_recipe(store: str | Path, given: dict) -> EmbedConfig:
    """The recipe of an ingest into ``store``: the one its manifest records, else
    EmbedConfig's defaults, with the options ``given`` (None: not given) over it. A given
    option that conflicts with the store's is refused, named; weights from another source
    are checked by their sha256 when the model is built.

    >>> store_recipe(store, {"pool": None}).weights
    'random:0'
    >>> store_recipe(store, {"image_size": 64})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    actdb.errors.StoreMismatch: image_size 64 conflicts with the store's 32; leave it out ...
    """
    given = {k: v for k, v in given.items() if v is not None}
    unknown = set(given) - set(RECIPE)
    if unknown:
        raise UsageError(f"unknown recipe option(s): {', '.join(sorted(unknown))}")
    if not manifest_path(Path(store)).exists():
        return EmbedConfig(**given)
    m = read_manifest(Path(store))
    stored = {k: getattr(m, k) for k in RECIPE}
    preprocess = given.get("preprocess") or m.preprocess
    conflicts = {k: f"{k} {v} conflicts with the store's {stored[k]}"
                 for k, v in sorted(given.items(), key=lambda kv: RECIPE.index(kv[0]))
                 if k != "weights" and not (k == "precision" and v == "auto")
                 and (_model_name(v, preprocess) if k == "model" else v) != stored[k]}
    if conflicts:
        them = "it" if len(conflicts) == 1 else "them"
        raise StoreMismatch(f"{'; '.join(conflicts.values())}; leave {them} out to ingest "
                            "with the store's recipe, or use another store", param=conflicts)
    return EmbedConfig(**{**stored, **{k: v for k, v in given.items() if k == "weights"}})


def _model_name(model: str, preprocess: str | None) -> str:
    from actdb.models.registry import get_spec

    return get_spec(model, preprocess).name


def prepare(cfg: IngestConfig):
    """What every engine does first: check the options, fetch a named dataset, find the
    layout and select the images. Returns (layout, entries)."""
    validate(cfg)
    root = cfg.root
    if str(root) in DATASETS and not Path(root).exists():
        root = fetch(str(root))  # e.g. imagenette: downloaded, verified, extracted
    layout = detect_layout(root)
    return layout, select_entries(layout.entries, cfg)


def make_engine(cfg: IngestConfig):
    """The engine ``cfg.engine`` names (``engine.LocalEngine`` or ``ray_engine.RayEngine``)."""
    if cfg.engine == "ray":
        from actdb.ingest.ray_engine import RayEngine

        return RayEngine(cfg.ray or RayConfig(),
                         batch_size=cfg.batch_size, rows_per_shard=cfg.rows_per_shard)
    return LocalEngine(batch_size=cfg.batch_size, workers=cfg.workers, decoders=cfg.decoders)


def ingest(cfg: IngestConfig, progress: Progress | None = None,
           engine=None) -> IngestResult:
    """Embed the images under ``cfg.root`` into the store; resume/skip what is there. The
    one driver of every engine (``engine``: by default the one ``cfg.engine`` names)."""
    t0 = time.perf_counter()
    store = Path(cfg.store)
    layout, entries = prepare(cfg)
    ec = _check_cheap(store, cfg.embed)  # a mismatching store is refused before any model
    engine = engine or make_engine(cfg)
    root = str(layout.root)
    with engine:
        emb = engine.prepare(ec)
        manifest = _manifest(emb)
        options = {k: v for k, v in asdict(cfg).items() if k not in ("root", "store")}
        # the backend is in the run, not the manifest: vectors do not depend on it
        options.update(backend=backend(), **engine.options())
        with StoreWriter(store, manifest) as w:
            present = w.existing_paths(root)
            todo = [e for e in entries if e.path not in present]
            skipped = len(entries) - len(todo)
            run_id = w.start_run(root, layout.name, options)
            out = _Commits(w, root, w.next_image_id(), manifest.dim)
            done, status = 0, "interrupted"
            try:
                for batch in engine.produce(todo, layout.root) if todo else ():
                    for r in batch:
                        if r.entry.path in present:  # a retried task's second answer
                            continue
                        present.add(r.entry.path)
                        out.add(r)
                        if r.error is not None and cfg.strict:
                            out.commit()
                            status = "failed"
                            raise IngestFailed(
                                f"{r.entry.path}: {r.error} (strict); fix or remove the "
                                "file, or ingest without strict to record failures and go on")
                    done += len(batch)
                    if progress:
                        progress(done, len(todo))
                    if len(out.rows) >= cfg.rows_per_shard:
                        out.commit()
                out.commit()
                status = "done"
            finally:
                w.finish_run(status, out.ingested, skipped, len(out.failures))
    result = IngestResult(
        store=str(store), layout=layout.name, layout_notes=layout.notes, run_id=run_id,
        total=len(entries), ingested=out.ingested, skipped=skipped, failed=len(out.failures),
        failures=out.failures, seconds=time.perf_counter() - t0,
        precision=emb.config.precision,
    )
    return _after_ingest(store, cfg, result)


def _after_ingest(store: Path, cfg: IngestConfig, result: IngestResult) -> IngestResult:
    """Bring the index and the class statistics up to date with what this run added."""
    s = Store.open(store)
    with s.reader() as con:
        stale = result.ingested > 0 or not reads.has_stats(con)
    result.index, result.stats = refresh(s, index=cfg.build_index,
                                         stats=cfg.compute_stats and stale)
    return result
