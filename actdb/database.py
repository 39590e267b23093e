"""``actdb.open()``: one object for everything the command line and the service can do.

>>> import actdb
>>> db = actdb.open(store)                   # db.ingest("imagenet/", per_class=100) made it
>>> db.count()
18
>>> db.nearest("id:0", k=3).neighbors.class_name.tolist()
['tench', 'tench', 'tench']
>>> db.sql("SELECT count(*) AS n FROM classes").to_pylist()
[{'n': 3}]
>>> fig = db.plot("pca", queries=["id:0"], classes="tench,groenendael", output=tmp / "pca.png")

Methods carry the command names (``ingest``, ``info``, ``check``, ``index``, ``stats``,
``nearest``, ``centroids``, ``examples``, ``sql``, ``plot``, ``report``, ``embed``) and the
same options, as keyword arguments. Results are pandas DataFrames, pyarrow Tables or small
dataclasses. The store's path is resolved here and nowhere else: ``path``, else
``$ACTDB_STORE``, else ``./actdb-store``; it need not exist until ``ingest`` makes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from actdb.errors import NotFound, QueryError, Refused, UsageError
from actdb.query.context import QueryContext
from actdb.query.nearest import allowed_ids, parse_classes
from actdb.query.resolve import QueryVector, Upload, as_list, resolve
from actdb.store.catalog import reads
from actdb.store.store import Store, resolve_store_path

__all__ = ["Database", "Upload"]

Progress = Callable[[str], None]


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"{name} must be at least 1, not {value}", param=name)


def _writable(output: str | Path | None) -> None:
    """Refuse an output whose folder does not exist before the work, not after it."""
    if output is not None and not Path(output).parent.is_dir():
        raise UsageError(f"cannot write {output}: the folder {Path(output).parent} does not "
                         "exist")


class Database:
    """A store, opened for everything. Thread-safe; ``close()`` stops its background work.

    ``sql_threads`` bounds DuckDB's threads for SQL (a server leaves cores to the model);
    ``linger`` keeps the catalog open that many seconds after a read (opening it costs
    ~13 ms; a writer in this process or another still gets in at once); ``defer_cache_writes``
    writes the query cache from a background thread every ``CACHE_FLUSH_S`` seconds (each
    write closes the shared catalog instance) and keeps the cache's keys in memory;
    ``batch_uploads`` lets concurrent image queries share forward passes; ``cache_metadata``
    keeps the images' names and paths in memory (~70 bytes an image) once the handle has
    answered a few queries (True: from the first; False: never), instead of a catalog read
    per answer. The service sets all of them. What queries keep between calls lives in one
    :class:`~actdb.query.context.QueryContext`, refreshed at the start of each call.

    ``space`` picks the space every method works in (``vgg19/block4_conv4``, or a unique
    short form such as ``block4_conv4``); None: the default space. :meth:`in_space` gives a
    handle on another space of the same store.

    ``runtime`` embeds query images with ``"onnx"`` (ONNX Runtime on the space's ONNX model,
    exported and checked the first time when the store has none) or ``"keras"``; None: ONNX
    where the space keeps a checked model, else Keras (:mod:`actdb.runtime`).
    """

    def __init__(self, path: str | Path | None = None, *, space: str | None = None,
                 sql_threads: int | None = None, linger: float = 1.0,
                 defer_cache_writes: bool = False, batch_uploads: bool = False,
                 cache_metadata: bool | None = None, runtime: str | None = None):
        from actdb.runtime import check_runtime

        self.path = resolve_store_path(path)
        self.space = space
        self.sql_threads = sql_threads
        self.linger = linger
        self._options = {"defer_cache_writes": defer_cache_writes,
                         "batch_uploads": batch_uploads, "cache_metadata": cache_metadata,
                         "runtime": check_runtime(runtime)}
        self._lock = threading.Lock()
        self._context: QueryContext | None = None
        self._spaces: dict[str, Database] = {}  # handles in_space() gave, closed with this

    def __repr__(self) -> str:
        space = f", space={self.space!r}" if self.space else ""
        return f"Database({str(self.path)!r}{space})"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Flush and stop background writers and batching; drop the loaded index and model."""
        with self._lock:
            ctx, self._context = self._context, None
            others, self._spaces = list(self._spaces.values()), {}
        for db in others:
            db.close()
        if ctx is not None:
            ctx.close()
        if self.linger:
            from actdb.store import catalog

            catalog.close_idle(self.path)

    def _ctx(self, refresh: bool = True) -> QueryContext:
        """The query context (made on first use: StoreError when there is no store yet),
        brought up to date with the store's files."""
        with self._lock:
            if self._context is None:
                store = Store.open(self.path, self.sql_threads, self.linger, self.space)
                store.space  # noqa: B018 - an unknown space is a clear error, now
                self._context = QueryContext(store, **self._options)
            ctx = self._context
        if refresh:
            ctx.refresh_if_changed()
        return ctx

    # -- the store ---------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether there is a store at :attr:`path` yet (``ingest`` makes one)."""
        from actdb.store.catalog.files import manifest_path

        return manifest_path(self.path).is_file()

    @property
    def store(self) -> Store:
        """The opened store (StoreError when there is none yet)."""
        return self._ctx(refresh=False).store

    @property
    def manifest(self):
        return self.store.manifest

    @property
    def embedder(self):
        """What embeds this space's query images (``runtime``: an OnnxEmbedder or the Keras
        Embedder, its weights checked against the manifest), made on first use."""
        return self._ctx(refresh=False).embedder

    def in_space(self, name: str | None) -> Database:
        """A handle on another space of this store (kept, and closed with this one)."""
        full = self.store.space_of(name).name
        with self._lock:
            if full not in self._spaces:
                self._spaces[full] = Database(self.path, space=full,
                                              sql_threads=self.sql_threads,
                                              linger=self.linger, **self._options)
            return self._spaces[full]

    def spaces(self):
        """Every space of the store (DataFrame: name, default, model, layer, pool, dim,
        image_size, precision, fingerprint, shards, vectors, index, onnx, view), the default
        first."""
        import pandas as pd

        return pd.DataFrame(self.store.spaces_info())

    def ingest(self, root: str | Path, progress: Callable[[int, int], None] | None = None,
               **options):
        """Embed the images under ``root`` into this store (made when missing), resuming and
        skipping what is there; then update the index and the statistics. Into a store that
        exists, the recipe options default to its manifest's (a conflicting one is refused).

        Options are :class:`~actdb.ingest.pipeline.IngestConfig`'s (``per_class``, ``limit``,
        ``seed``, ``split``, ``batch_size``, ``strict``, ``shard``, ``rows_per_shard``,
        ``workers``, ``engine``...) and :class:`~actdb.models.embed.EmbedConfig`'s (``model``,
        ``layer``, ``pool``, ``weights``, ``image_size``, ``resize``, ``precision``).
        ``layers`` ("a,b" or a list) embeds several layers of the model in one forward pass,
        a space each. Another model or layer than the store's adds a space, and fills it with
        every image the store holds; new images go into every space.
        """
        from actdb.ingest.pipeline import IngestConfig, ingest

        result = ingest(IngestConfig.of(root, self.path, **options), progress)
        self.close()  # the store may be new: open it again on the next call
        return result

    def info(self) -> dict:
        """What is in the store: recipe, counts, classes, failures, size, index, statistics
        (``damaged`` lists what is missing), and ``query_route``: how this handle embeds
        image queries (:mod:`actdb.runtime`)."""
        return {**self.store.info(), "query_route": self._ctx(refresh=False).route}

    def check(self, repair: bool = False):
        """Verify that every file of the store agrees (CheckReport); ``repair=True`` first
        rebuilds what can be rebuilt."""
        from actdb.check import check_store, repair_store

        return repair_store(self.store) if repair else check_store(self.store)

    def index(self, kind: str = "auto", metric: str = "l2", target_recall: float = 0.95
              ) -> dict:
        """(Re)build the FAISS index; returns what ``index.json`` records."""
        from actdb.index.faiss_index import IndexConfig
        from actdb.index.store_index import index_store

        return index_store(self.store, IndexConfig(kind=kind, metric=metric,
                                                   target_recall=target_recall))

    def stats(self, seed: int | None = None, pairs_per_class: int | None = None,
              pair_sample: int | None = None, nn_sample: int | None = None) -> dict:
        """(Re)compute centroids, class_stats, pair_stats and nn_sample. Settings left None
        keep what the store recorded last time."""
        from actdb.stats import compute_stats, settings

        for name, value in (("pairs_per_class", pairs_per_class),
                            ("pair_sample", pair_sample), ("nn_sample", nn_sample)):
            if value is not None:
                _positive(name, value)
        return compute_stats(self.store, settings(self.store, seed=seed,
                                                  pairs_per_class=pairs_per_class,
                                                  pair_sample=pair_sample,
                                                  nn_sample=nn_sample))

    def compare(self, *, sample: int = 50_000, seed: int = 0, k: int = 10,
                queries: int = 5000, pairs: int = 100_000):
        """Compare every space of the store on one seeded sample of ``sample`` shared images
        (CompareResult): linear CKA of every pair (exact, or the debiased minibatch estimate
        when the sample's vectors do not fit in memory), each space's leave-one-out k-NN
        class accuracy (``k`` neighbours, ``queries`` voters) and same/different-class
        distance ratio (``pairs`` pairs); kept in ``space_similarity`` and
        ``space_separation``."""
        from actdb.comparing import CompareConfig, compare_spaces

        return compare_spaces(self.store, CompareConfig(sample=sample, seed=seed, k=k,
                                                        queries=queries, pairs=pairs))

    def images(self, where: str | None = None):
        """The images table (DataFrame), optionally filtered by a SQL predicate."""
        return self.store.images(where)

    def count(self) -> int:
        """How many images the store holds."""
        with self.store.reader() as con:
            return reads.summary(con)["images"]

    def classes(self):
        """The classes view (DataFrame): class_key, synset, class_name, class_index,
        n_images."""
        with self.store.reader() as con:
            return reads.classes_df(con)

    def image_file(self, image_id: int) -> Path:
        """The file of a stored image, as ingested (NotFound when there is no such image or
        its file is gone; Refused for a path outside its dataset root)."""
        with self.store.reader() as con:
            meta = reads.image_meta(con, [image_id], missing_ok=True)
        if meta["root"][0] is None:
            raise NotFound(f"no stored image with id {image_id}")
        root = Path(meta["root"][0]).resolve()
        full = (root / meta["path"][0]).resolve()
        if not full.is_relative_to(root):  # never read outside the dataset root
            raise Refused(f"the path of image {image_id} is outside its dataset root")
        if not full.is_file():
            raise NotFound(f"the file of image {image_id} is gone")
        return full

    def thumbnail(self, image_id: int, size: int = 128) -> bytes:
        """A JPEG thumbnail of a stored image, at most ``size`` px a side (never enlarged)."""
        from actdb.viz.report import thumbnail

        return thumbnail(self.image_file(image_id), size)

    def vectors(self, ids=None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every stored image, or of these ids in their order."""
        return self.store.vectors(ids)

    # -- queries -----------------------------------------------------------------------------

    def resolve(self, queries, names: list[str] | None = None) -> list[QueryVector]:
        """Image files, ``id:N``, ``.npy`` files, arrays or uploads -> query vectors, embedded
        exactly as the stored images were (and cached by content)."""
        return self._resolve(queries, names, self._ctx())

    def _resolve(self, queries, names, ctx: QueryContext) -> list[QueryVector]:
        specs = as_list(queries)
        if not specs:
            raise UsageError("give at least one query")
        return resolve(specs, names, ctx)

    def nearest(self, queries, k: int = 10, classes=None, split: str | None = None,
                where: str | None = None, names: list[str] | None = None,
                include_self: bool = False, recall: float | None = None):
        """The k nearest stored images of each query, their class vote and the distance in
        context (NearestResult: ``.neighbors``, ``.classes``, ``.context`` DataFrames).
        ``id:N`` queries leave their own image out unless ``include_self``. ``recall`` asks an
        approximate index for the cheapest setting measured to reach it (``index.json``)."""
        from actdb.query.nearest import nearest

        _positive("k", k)
        if recall is not None and not 0 < recall <= 1:
            raise UsageError(f"recall must be in (0, 1], not {recall}", param="recall")
        ctx = self._ctx(refresh=False)
        ctx.load_index_early()  # read while the catalog opens
        ctx.refresh_if_changed()
        ctx.require_intact()
        with ctx.cache.holding():  # cache new queries after the reads below
            qs = self._resolve(queries, names, ctx)
            if ctx.index.ntotal == 0:
                raise QueryError("the store has no images yet; ingest some first")
            allowed = allowed_ids(ctx.store, classes, split, where)
            return nearest(qs, k, ctx, allowed, include_self, recall)

    def across_spaces(self, queries, k: int = 50, classes=None, split: str | None = None,
                      where: str | None = None, names: list[str] | None = None,
                      include_self: bool = False, recall: float | None = None):
        """Where each query lands in every space (DataFrame, a row per query and space):
        the class its ``k`` nearest images vote for, the nearest centroid and whether it lies
        inside that class's p95 radius, the nearest-neighbour distance in context, and the
        route that embedded it. Every option means what it means to :meth:`nearest`, and
        each space answers exactly as it does alone (its runtime and query cache); the
        spaces of one network that embed with Keras share one forward pass."""
        from actdb.query.across import share_forward, side_by_side, space_rows

        specs = self._askable(queries)
        rows, spaces = [], self.store.spaces()
        _positive("k", k)
        share_forward([self.in_space(s.name)._ctx() for s in spaces], specs, names)
        for space in spaces:
            sub = self.in_space(space.name)
            near = sub.nearest(specs, k=k, classes=classes, split=split, where=where,
                               names=names, include_self=include_self, recall=recall)
            cents = sub.centroids([a.query for a in near.answers], k=1, classes=classes)
            rows += space_rows(space, near, cents)
        return side_by_side(rows, spaces)

    def centroids_across_spaces(self, queries, k: int = 10, classes=None):
        """:meth:`centroids` asked of every space (DataFrame: ``space`` and the centroids'
        columns; each query's spaces together, in the store's order)."""
        from actdb.query.across import side_by_side
        from actdb.query.centroids import COLUMNS

        specs, spaces, rows = self._askable(queries), self.store.spaces(), []
        for space in spaces:
            got = self.in_space(space.name).centroids(specs, k=k, classes=classes)
            rows += [{"space": space.name, **r} for r in got.to_dict("records")]
        return side_by_side(rows, spaces, ["query", "space", *COLUMNS[1:]])

    def _askable(self, queries) -> list:
        from actdb.query.across import require_askable

        specs = as_list(queries)
        if not specs:
            raise UsageError("give at least one query")
        require_askable(specs)
        return specs

    def centroids(self, queries, k: int = 10, classes=None):
        """Classes ranked by the distance from each query to their centroid, with each
        class's spread (DataFrame)."""
        from actdb.query.centroids import centroids

        _positive("k", k)
        self._ctx().require_intact()
        qs = self.resolve(queries)
        names = parse_classes(classes)
        with self.store.reader() as con:
            cent = reads.centroids(con, self.store.space.name)
            if names:
                cent = cent[cent.class_key.isin(reads.resolve_classes(con, names))]
        return centroids(qs, cent, k)

    def examples(self, channel: int, k: int = 20):
        """The stored images with the highest pooled value of ``channel`` (ExamplesResult)."""
        from actdb.query.examples import examples

        return examples(self.store, channel, k)

    def sql(self, query: str, max_rows: int | None = None, timeout: float | None = None):
        """One read-only SQL statement over the store's views (pyarrow Table)."""
        from actdb.query.sql import run_sql

        if max_rows is not None:
            _positive("max_rows", max_rows)
        ctx = self._ctx(refresh=False)
        ctx.flush_cache()  # the ``queries`` view shows every query asked so far
        return run_sql(ctx.store, query, max_rows, timeout)

    def embed(self, images) -> np.ndarray:
        """Pooled vectors of image files (or bytes), exactly as ``nearest`` embeds them."""
        paths = as_list(images)
        for p in paths:
            if not isinstance(p, bytes) and not Path(p).is_file():
                raise QueryError(f"{p} is not a file")
        return self._ctx(refresh=False).embed_images(paths)

    # -- pictures ----------------------------------------------------------------------------

    def plot(self, kind: str, queries=(), output: str | Path | None = None, *,
             classes=None, random_classes: int = 0, per_class: int = 100, seed: int = 0,
             log: bool = False, bins: int = 40, save_coords: str | Path | None = None,
             progress: Progress | None = None):
        """A matplotlib Figure: ``tsne``, ``umap`` or ``pca`` maps, a channel ``profile``, or
        ``distances`` histograms, with the queries highlighted, or the ``cka`` heatmap of the
        last ``compare``; saved when ``output`` is given (.png, .svg, .pdf)."""
        from actdb.viz.plot import KINDS, PlotConfig, plot

        if kind not in KINDS:  # a picture there is no such thing as (404 in the service)
            raise NotFound(f"unknown plot {kind!r}; use one of {', '.join(KINDS)}")
        _writable(output)
        _writable(save_coords)
        self._ctx().require_intact()
        cfg = PlotConfig(classes=parse_classes(classes), random_classes=random_classes,
                         per_class=per_class, seed=seed, log=log, bins=bins)
        qs = self.resolve(queries) if as_list(queries) else []
        return plot(self.store, kind, qs, cfg, output=output, save_coords=save_coords,
                    progress=progress)

    def plot_png(self, kind: str, queries=(), **options) -> bytes:
        """``plot`` as PNG bytes (what the service sends); options as ``plot``'s."""
        from actdb.viz.figures import png_bytes

        return png_bytes(self.plot(kind, queries, **options))

    def map(self, method: str = "auto", *, per_class: int | None = None, classes=None,
            random_classes: int = 0, seed: int = 0, build: bool = True,
            progress: Progress | None = None):
        """The stored 2-D map (StoredMap) of a sample and a projection (``auto``: t-SNE below
        20,000 points, else UMAP; ``umap``, ``tsne``, ``pca``), made and stored when missing
        or stale. ``per_class=None`` with no classes is the default map: every class, at most
        50,000 points."""
        from actdb.viz.maps import MapSpec, get_map

        names = parse_classes(classes)
        if per_class is None and not names and not random_classes:
            spec = MapSpec.default(len(self.classes()), method, seed)
        else:
            if per_class is not None:
                _positive("per_class", per_class)
            spec = MapSpec.of(method, per_class or 100, names, random_classes, seed)
        ctx = self._ctx()
        ctx.require_intact()
        m = get_map(ctx.store, spec, progress, build=build)
        ctx.keep_map(m)
        return m

    def maps(self):
        """Every stored map (DataFrame), newest first; ``current`` is False for a map made
        before the store last changed."""
        from actdb.viz.maps import list_maps

        return list_maps(self.store)

    def place(self, queries, map_id: str | None = None, names: list[str] | None = None,
              distances: bool = False):
        """Queries placed into a stored map, the map itself unchanged (Placement:
        ``.coords`` DataFrame name, x, y; with ``distances``, ``.distances`` from each query
        to every map point). ``map_id`` None is the default map (method ``auto``)."""
        from actdb.viz.maps import Placement

        m = self.stored_map(map_id)
        qs = self.resolve(queries, names)
        return Placement.of(m, qs, distances)

    def stored_map(self, map_id: str | None = None):
        """A stored map by id (the default map, ``auto``, when None), kept loaded by this handle
        while it stays current; QueryError when there is none."""
        from actdb.viz.maps import MapSpec

        if map_id is None:
            map_id = MapSpec.default(len(self.classes())).in_space(self.store).map_id
        m = self._ctx().stored_map(map_id)
        if m is None:
            raise NotFound(f"no map {map_id} in the store; make one with actdb map")
        return m

    def export(self, to: str, path: str | Path, *, classes=None, per_class: int | None = None,
               where: str | None = None, seed: int = 0, queries=(), method: str = "auto",
               base_url: str | None = None, progress: Progress | None = None):
        """Write the store (or a selection) for another tool (ExportResult): ``projector``
        (TensorBoard Projector's files in the folder ``path``, at most 100,000 points),
        ``atlas`` (a Parquet for Apple's Embedding Atlas: map coordinates, class, path,
        thumbnail; ``queries`` are placed as extra rows) or ``parquet`` (vectors and
        metadata joined). Selection as ``plot``: ``classes``, ``per_class`` (a seeded
        per-class sample), ``where`` (a SQL predicate over images). ``base_url``: where a
        projector folder will be served, for the standalone projector's JSON config."""
        from actdb.viz import export as ex

        if to not in ex.TARGETS:
            raise UsageError(f"unknown export target {to!r}; use one of "
                             f"{', '.join(ex.TARGETS)}")
        if per_class is not None:
            _positive("per_class", per_class)
        _writable(path)
        ctx = self._ctx()
        ctx.require_intact()
        if to == "atlas":
            qs = self.resolve(queries) if as_list(queries) else []
            first = self.nearest(qs[:1], k=50).classes.class_name.tolist() if qs else None
            if where is None:  # the stored map of this sample (made once, reused)
                m = self.map(method, per_class=per_class, classes=classes, seed=seed,
                             progress=progress)
                return ex.export_atlas(ctx.store, path, qs, stored_map=m, first_classes=first,
                                       stage=progress)
            return ex.export_atlas(ctx.store, path, qs, method=method, seed=seed,
                                   ids=allowed_ids(ctx.store, classes, None, where),
                                   per_class=per_class, first_classes=first, stage=progress)
        ids = allowed_ids(ctx.store, classes, None, where)
        if ids is None:
            with ctx.store.reader() as con:
                ids = reads.image_ids(con)
        cap = ex.PROJECTOR_MAX_POINTS if to == "projector" else None
        ids, note = ex.stratified(ctx.store, ids, per_class, cap, seed)
        if to == "projector":
            return ex.export_projector(ctx.store, ids, path, note, base_url=base_url,
                                       stage=progress)
        return ex.export_parquet(ctx.store, ids, path, note, stage=progress)

    def atlas(self, channels=None, *, recipe: str = "improved", steps: int | None = None,
              size: int | None = None, batch: int = 8, models=("vgg19", "vgg16", "resnet50"),
              k: int = 12, examples: int = 12, seed: int = 0, variants: bool = False,
              precision: str = "auto", heatmaps: bool = True,
              output: str | Path | None = None, progress=None, stage: Progress | None = None):
        """The channel atlas of the store's layer (AtlasResult): each channel's feature
        visualisation (``batch`` channels optimised at once), what ``models`` predict for it,
        where it lands (``k`` nearest images, class vote, centroids), its top, bottom and
        quantile ``examples`` and the agreement of these, in the ``channels`` table, then a
        static site (``output``, else the store's ``atlas/site``). ``channels``: "0-511",
        "4,17" or a list; None: all. ``size``: the pictures' size (None: the store's image
        size). Rerunning continues where a run stopped. ``output`` is made when missing."""
        from actdb.atlas.run import AtlasConfig, parse_channels, run_atlas

        chans = (tuple(parse_channels(channels, self.manifest.dim))
                 if isinstance(channels, str) else tuple(channels) if channels else None)
        if output is not None and Path(output).exists() and not Path(output).is_dir():
            raise UsageError(f"cannot write the atlas into {output}: it is a file, not a folder")
        self._ctx().require_intact()
        size = size or self.manifest.image_size
        cfg = AtlasConfig(channels=chans, recipe=recipe, steps=steps, size=size, batch=batch,
                          models=tuple(models), k=k, examples=examples, seed=seed,
                          variants=variants, precision=precision, heatmaps=heatmaps,
                          output=output)
        return run_atlas(self, cfg, progress, stage)

    def dream(self, output: str | Path, progress=None, **options):
        """:func:`actdb.dream` with the store's own network: the options left out (``model``,
        ``layer``, ``weights``, ``size``, ``preprocess``) are this space's recipe, so a
        picture made here excites the channel the store's vectors hold (DreamResult)."""
        from actdb.featvis.dream import DreamConfig
        from actdb.featvis.dream import dream as run

        m = self.manifest
        given = {k: v for k, v in options.items() if v is not None}
        if "model" not in given:  # another model: none of this store's recipe applies
            given = {"model": m.model, "layer": m.layer, "weights": m.weights,
                     "size": m.image_size, "preprocess": m.preprocess, **given}
        return run(DreamConfig(**given), output, progress)

    @property
    def atlas_site(self) -> Path:
        """Where ``atlas`` writes its static site by default (what ``serve`` shows)."""
        from actdb.store.catalog.files import atlas_site

        return atlas_site(self.path)

    def channels(self):
        """The atlas's channels table (DataFrame; empty before ``atlas`` runs)."""
        with self.store.reader() as con:
            return reads.channels(con)

    def report(self, output: str | Path, queries, *, k: int = 12, classes=None,
               random_classes: int = 0, per_class: int = 100, seed: int = 0,
               progress: Progress | None = None) -> Path:
        """One self-contained HTML file: the queries, their neighbours, class vote, centroid
        ranking, t-SNE and UMAP maps and distance histograms."""
        from actdb.query.across import askable
        from actdb.viz.plot import PlotConfig
        from actdb.viz.report import ReportConfig, build_report

        _positive("k", k)
        _writable(output)
        qs = self.resolve(queries)
        cfg = ReportConfig(k=k, plot=PlotConfig(classes=parse_classes(classes),
                                                random_classes=random_classes,
                                                per_class=per_class, seed=seed))
        say = progress or (lambda _: None)
        say("nearest neighbours")
        near = self.nearest(qs, k=k)
        cents = self.centroids(qs, k=10)
        across = None
        specs = as_list(queries)
        if len(self.store.spaces()) > 1 and all(map(askable, specs)):
            say("every space")
            across = self.across_spaces(specs)
        return build_report(self.store, qs, near, cents, output, cfg, progress, across)

