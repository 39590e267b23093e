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
import os
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from actdb.errors import ActdbWarning, IngestFailed, UsageError
from actdb.ingest.datasets import DATASETS, fetch
from actdb.ingest.engine import DECODERS, Embedded, Engine, LocalEngine, RayConfig
from actdb.ingest.layout import SPLITS, ImageEntry, detect_layout
from actdb.ingest.recipe import (
    RECIPE,
    Network,
    manifest_of,
    plan_ingest,
    store_recipe,
)
from actdb.options import EmbedConfig
from actdb.stats import refresh_index_and_stats
from actdb.store.catalog import reads
from actdb.store.catalog.schema import FailureRow, ImageRow
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
    layers: tuple[str, ...] | None = None  # several layers of embed's network: a space each
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
    #: keep each space's model as ONNX for queries (actdb.runtime); default on, off where
    #: the environment sets ACTDB_ONNX=0
    onnx: bool = field(default_factory=lambda: os.environ.get("ACTDB_ONNX", "1") != "0")

    @classmethod
    def of(cls, root: str | Path, store: str | Path, **options) -> IngestConfig:
        """A config from options by name: the recipe's (:class:`EmbedConfig`'s, over the
        store's own recipe: :func:`store_recipe`) and the run's (this class's other fields).
        """
        run = {f.name for f in fields(cls)} - {"root", "store", "embed", "ray"}
        unknown = set(options) - set(RECIPE) - run - set(RAY_OPTIONS)
        if unknown:
            raise UsageError(f"unknown ingest option(s): {', '.join(sorted(unknown))}")
        layers = options.pop("layers", None)
        if isinstance(layers, str):
            layers = [x.strip() for x in layers.split(",") if x.strip()]
        if layers is not None and not layers:
            raise UsageError("layers names no layer; give one or more, comma-separated "
                             "(`actdb layers MODEL` lists them)", param="layers")
        if layers and options.get("layer"):
            raise UsageError("layers names every layer to embed; layer goes without it",
                             param=("layers", "layer"))
        options["layers"] = tuple(layers) if layers else None
        embed = store_recipe(store, {k: v for k, v in options.items() if k in RECIPE},
                             options["layers"])
        ray = {RAY_OPTIONS[k]: v for k, v in options.items() if k in RAY_OPTIONS}
        return cls(root=root, store=store, embed=embed, ray=RayConfig(**ray) if ray else None,
                   **{k: v for k, v in options.items() if k in run})


@dataclass(frozen=True, kw_only=True)
class Failure:
    """An image that could not be embedded (its path under the root), and why."""

    path: str
    reason: str


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
    failures: list[Failure]
    seconds: float
    precision: str
    index: dict | None = None
    stats: dict | None = None
    onnx: dict | None = None  # space -> "kept", or why its ONNX model could not be kept
    #: images of the store embedded into a space that lacked them (a space added, or a shard
    #: a repair dropped), by space, and the seconds that took
    filled: dict[str, int] = field(default_factory=dict)
    fill_seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.ingested / self.seconds if self.seconds > 0 else 0.0

    @property
    def fill_images_per_s(self) -> float:
        """Images a second of the fill (each image decoded once for all its network's
        spaces)."""
        n = max(self.filled.values(), default=0)
        return n / self.fill_seconds if self.fill_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["images_per_s"] = round(self.images_per_s, 3)
        d["fill_images_per_s"] = round(self.fill_images_per_s, 3)
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

    def __init__(self, writer: StoreWriter, root: str, next_id: int):
        self.w, self.root, self.next_id = writer, root, next_id
        self.ids: list[int] = []
        self.vecs: list[np.ndarray] = []
        self.rows: list[ImageRow] = []
        self.pending_failures: list[FailureRow] = []
        self.failures: list[Failure] = []
        self.ingested = 0

    def add(self, r: Embedded) -> None:
        e = r.entry
        if r.error is not None:
            self.failures.append(Failure(path=e.path, reason=r.error))
            self.pending_failures.append(FailureRow(
                root=self.root, path=e.path, split=e.split, synset=e.synset,
                class_name=e.class_name, reason=r.error))
            return
        self.ids.append(self.next_id)
        self.vecs.append(r.vecs)
        self.rows.append(ImageRow(
            image_id=self.next_id, root=self.root, path=e.path, split=e.split,
            synset=e.synset, class_name=e.class_name, class_index=e.class_index,
            width=r.width, height=r.height, bytes=r.nbytes))
        self.next_id += 1

    def commit(self) -> None:
        """Write the shard and its rows, and the failures, in one commit."""
        if not self.rows and not self.pending_failures:
            return
        vecs = [_stack([v[i] for v in self.vecs], row.dim)
                for i, row in enumerate(self.w.spaces)]
        self.w.commit(np.asarray(self.ids, np.int64), vecs, self.rows, self.pending_failures)
        self.ingested += len(self.rows)
        self.ids, self.vecs, self.rows, self.pending_failures = [], [], [], []


def _stack(vecs: list[np.ndarray], dim: int) -> np.ndarray:
    return np.asarray(vecs, np.float32).reshape(len(vecs), dim)


#: The Ray engine's options by the names ``ingest`` takes them (``RayConfig``'s fields).
RAY_OPTIONS = {"ray_address": "address", "actors": "actors", "actor_cpus": "actor_cpus",
               "actor_gpus": "actor_gpus"}


def find_images(cfg: IngestConfig):
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
           engine: Engine | None = None) -> IngestResult:
    """Embed the images under ``cfg.root`` into the store; resume/skip what is there. The
    one driver of every engine (``engine``: by default the one ``cfg.engine`` names).

    New images are embedded by the default space's network, into each of its spaces (and
    any new layer of it asked) in one forward pass; then every space that lacks some of the
    store's images (a model or layer added now or earlier, or not yet filled when a run was
    killed) is filled, shard by shard, from the images' files."""
    t0 = time.perf_counter()
    store = Path(cfg.store)
    layout, entries = find_images(cfg)
    plan = plan_ingest(store, cfg.embed, _layers(cfg))  # a mismatch refused before any model
    engine = engine or make_engine(cfg)
    root = str(layout.root)
    with engine:
        plan.refuse_other_weights(engine)  # before anything is written
        members = engine.prepare(plan.first.recipe, plan.first.layers)
        options = {k: v for k, v in asdict(cfg).items() if k not in ("root", "store")}
        # the backend is in the run, not the manifest: vectors do not depend on it
        options.update(backend=members[0].backend, **engine.options())
        with StoreWriter(store, [manifest_of(m) for m in members]) as w:
            present = w.existing_paths(root)
            todo = [e for e in entries if e.path not in present]
            skipped = len(entries) - len(todo)
            run_id = w.start_run(root, layout.name, options)
            out = _Commits(w, root, w.next_image_id())
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
        t_fill, filled = time.perf_counter(), {}
        for net in [plan.first, *plan.later]:  # each space's missing shards, after the above
            got, failed = _fill(store, engine, net, run_id, progress)
            filled.update(got)
            out.failures += failed
        t_fill = time.perf_counter() - t_fill
    result = IngestResult(
        store=str(store), layout=layout.name, layout_notes=layout.notes, run_id=run_id,
        total=len(entries), ingested=out.ingested, skipped=skipped, failed=len(out.failures),
        failures=out.failures, seconds=time.perf_counter() - t0,
        precision=members[0].config.precision, filled=filled,
        fill_seconds=t_fill if filled else 0.0,
    )
    return _after_ingest(store, cfg, result)


def _layers(cfg: IngestConfig) -> list[str]:
    """The layers an ingest asks for (the model's default layer when none is named)."""
    if cfg.layers:
        if len(set(cfg.layers)) != len(cfg.layers):
            raise UsageError("name each layer once", param="layers")
        return list(cfg.layers)
    if cfg.embed.layer:
        return [cfg.embed.layer]
    from actdb.models.registry import get_spec

    return [get_spec(cfg.embed.model, cfg.embed.preprocess).default_layer]


def _fill(store: Path, engine: Engine, net: Network, run_id: int,
          progress: Progress | None = None) -> tuple[dict[str, int], list[Failure]]:
    """Embed into the spaces of one network the image shards they lack, each written under
    its image shard's name and listed in one transaction (exactly once). An image that
    cannot be read now is left out of the space's shard. Returns how many images each space
    received, and the images that failed."""
    ec, layers = net.recipe, net.layers
    failures: list[Failure] = []
    with Store.open(store).reader() as con:  # after the run's writes: what they added
        have = {r.name for r in reads.spaces(con)}
        names = [f"{Path(ec.model).name}/{x}" for x in layers]
        if all(n in have and not reads.shards_to_fill(con, n) for n in names):
            return {}, failures
    members = engine.prepare(ec, layers)
    with StoreWriter(store, [manifest_of(m) for m in members], run_id=run_id) as w:
        with w.connect() as con:
            lacking = {r.name: set(reads.shards_to_fill(con, r.name)) for r in w.spaces}
            todo = {shard: reads.shard_images(con, shard)
                    for shard in sorted(set().union(*lacking.values()))}
        total = sum(len(f) for images in todo.values() for f in images.values())
        done = 0
        filled = {r.name: 0 for r in w.spaces if lacking[r.name]}
        for shard, images in todo.items():
            ids, vecs = [], []
            for root, files in images.items():  # each under its dataset root, as ingested
                entries = [ImageEntry(path=path, split=None, synset=None, class_name=None,
                                      class_index=None) for _, path in files]
                by_path = {path: image_id for image_id, path in files}
                for batch in engine.produce(entries, Path(root)):
                    for r in batch:
                        if r.error is not None:
                            failures.append(Failure(path=f"{root}/{r.entry.path}",
                                                    reason=r.error))
                        else:
                            ids.append(by_path[r.entry.path])
                            vecs.append(r.vecs)
            order = np.argsort(np.asarray(ids, np.int64), kind="stable")  # by id, as written
            ids, vecs = [ids[i] for i in order], [vecs[i] for i in order]
            spaces = [i for i, r in enumerate(w.spaces) if shard in lacking[r.name]]
            w.fill(shard, [w.spaces[i] for i in spaces], np.asarray(ids, np.int64),
                   [_stack([v[i] for v in vecs], w.spaces[i].dim) for i in spaces])
            for i in spaces:
                filled[w.spaces[i].name] += len(ids)
            done += sum(len(f) for f in images.values())
            if progress:
                progress(done, total)
    return filled, failures


def _after_ingest(store: Path, cfg: IngestConfig, result: IngestResult) -> IngestResult:
    """Bring the index and the class statistics up to date with what this run added."""
    s = Store.open(store)
    result.index, result.stats = refresh_index_and_stats(
        s, index=cfg.build_index, stats=cfg.compute_stats, stale_only=True)
    if cfg.onnx:
        result.onnx = _keep_onnx(s)
    return result


def _keep_onnx(store: Store) -> dict[str, str]:
    """Export every fp32 space's model that the store does not keep as ONNX yet (a warning
    for each that cannot be: its queries embed with Keras). A bf16 space's queries embed with
    its own Keras bf16 model (:mod:`actdb.runtime`): its ONNX model is made only when
    ``runtime="onnx"`` first asks for it."""
    from actdb.runtime import keep_onnx
    from actdb.store.catalog.files import onnx_model_path

    out = {}
    for row in store.spaces():
        space = store.in_space(row.name)
        if onnx_model_path(space.dir).is_file() or space.manifest.precision == "bf16":
            continue
        why = keep_onnx(space)
        out[row.name] = why or "kept"
        if why:
            warnings.warn(ActdbWarning(f"{row.name}: {why}; its queries embed with Keras"),
                          stacklevel=2)
    return out
