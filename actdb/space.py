"""One space of a store, held as an object: every question asked of one recipe's vectors.

>>> import actdb
>>> space = actdb.open(store).space()        # the default space; .space("block4_conv4")...
>>> space.name
'vgg19/block5_conv4'
>>> space.nearest("id:0", k=3).neighbors.class_name.tolist()
['tench', 'tench', 'tench']
>>> fig = space.plot("pca", queries=["id:0"], classes="tench,groenendael", output=tmp / "pca.png")

:meth:`actdb.database.Database.space` makes it (and closes it with the store's handle). Each
method is one call on one :class:`~actdb.query.context.QueryContext`: brought up to date with
the store's files once (:meth:`Space._call`), then asked. Methods carry the command names
and options of ``nearest``, ``centroids``, ``examples``, ``index``, ``stats``, ``embed``,
``plot``, ``map``, ``export``, ``atlas``, ``report`` and ``dream``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from actdb.errors import NotFound, QueryError, UsageError
from actdb.progress import progress_for
from actdb.query.context import QueryContext
from actdb.query.nearest import allowed_ids, parse_classes
from actdb.query.resolve import QueryVector, as_list, parse_queries, resolve
from actdb.store.catalog import derived, reads
from actdb.store.store import Store

__all__ = ["Space"]

Progress = Callable[[str], None]


def positive(name: str, value: int) -> None:
    """UsageError unless ``value`` is at least 1."""
    if value < 1:
        raise UsageError(f"{name} must be at least 1, not {value}", param=name)


def writable(output: str | Path | None) -> None:
    """Refuse an output whose folder does not exist before the work, not after it."""
    if output is not None and not Path(output).parent.is_dir():
        raise UsageError(f"cannot write {output}: the folder {Path(output).parent} does not "
                         "exist")


def configured(cls, config, options: dict, what: str):
    """``config`` (else ``cls()``) with ``options`` replacing its fields; UsageError for an
    option ``cls`` has no field of."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"{what} has no option {unknown[0]!r}; its options: "
                         f"{', '.join(sorted(known))}")
    return replace(config or cls(), **options)


def queries_given(queries) -> list:
    """The queries as a list; UsageError when there are none."""
    specs = as_list(queries)
    if not specs:
        raise UsageError("give at least one query")
    return specs


class Space:
    """One space of a store (``name``: ``model/layer``), with its loaded index, model and
    query cache. Thread-safe; made by :meth:`Database.space`, closed with its Database."""

    def __init__(self, store: Store, options: dict, *, across: Callable | None = None):
        self._across = across  # Database.across_spaces, for report's row per space
        self.store = store
        self.name: str = store.space.name
        self._ctx = QueryContext(store, **options)

    def __repr__(self) -> str:
        return f"Space({str(self.store.path)!r}, {self.name!r})"

    def close(self) -> None:
        """Flush and stop background writers and batching; drop the loaded index and model."""
        self._ctx.close()

    @contextlib.contextmanager
    def _call(self, *, intact: bool = True, index: bool = False,
              hold: bool = False) -> Iterator[QueryContext]:
        """The context of one call, refreshed once: ``index`` starts reading the index while
        the catalog opens, ``intact`` refuses a space whose listed shards are gone, ``hold``
        caches new query vectors only after the call's reads."""
        ctx = self._ctx
        if index:
            ctx.load_index_early()
        ctx.refresh_if_changed()
        if intact:
            ctx.require_intact()
        with ctx.cache.holding() if hold else contextlib.nullcontext():
            yield ctx

    # -- what the space is -------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The store's folder."""
        return self.store.path

    @property
    def manifest(self):
        """The space's recipe (:class:`~actdb.store.manifest.Manifest`)."""
        return self.store.manifest

    @property
    def embedder(self):
        """What embeds this space's query images (``runtime``: an OnnxEmbedder or the Keras
        Embedder, its weights checked against the manifest), made on first use."""
        return self._ctx.embedder

    def warm(self) -> None:
        """Build what embeds query images now, not at the first image query."""
        self._ctx.embedder  # noqa: B018 - made on first use

    def info(self) -> dict:
        """What is in the store, seen from this space: recipe, counts, classes, failures,
        size, index, statistics (``damaged`` lists what is missing), and ``query_route``:
        how image queries are embedded (:mod:`actdb.runtime`)."""
        return {**self.store.info(), "query_route": self._ctx.route}

    def vectors(self, ids=None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every stored image, or of these ids in their order."""
        return self.store.vectors(ids)

    # -- writes ------------------------------------------------------------------------------

    def index(self, kind: str = "auto", metric: str = "l2", target_recall: float = 0.95
              ) -> dict:
        """(Re)build the FAISS index; returns what ``index.json`` records."""
        from actdb.index.faiss_index import IndexConfig
        from actdb.index.store_index import index_store

        return index_store(self.store, IndexConfig(kind=kind, metric=metric,
                                                   target_recall=target_recall))

    def stats(self, config=None, progress: bool | Callable | None = None, **options) -> dict:
        """(Re)compute centroids, class_stats, pair_stats and nn_sample. Options are
        :class:`~actdb.options.StatsConfig`'s fields; those left None keep what the store
        recorded last time. ``progress`` as :meth:`Database.ingest`'s."""
        from actdb.options import StatsConfig
        from actdb.stats import compute_stats, settings

        cfg = configured(StatsConfig, config, options, "stats")
        for name in ("pairs_per_class", "pair_sample", "nn_sample"):
            if getattr(cfg, name) is not None:
                positive(name, getattr(cfg, name))
        with progress_for(progress, "stats") as report:
            return compute_stats(self.store, settings(self.store, cfg), report)

    # -- queries -----------------------------------------------------------------------------

    def resolve(self, queries, names: list[str] | None = None) -> list[QueryVector]:
        """Image files, ``id:N``, ``.npy`` files, arrays or uploads -> query vectors, embedded
        exactly as the stored images were (and cached by content)."""
        with self._call(intact=False) as ctx:
            return resolve(queries_given(queries), names, ctx)

    def embed(self, images) -> np.ndarray:
        """Pooled vectors of image files (or bytes), exactly as ``nearest`` embeds them."""
        paths = as_list(images)
        for p in paths:
            if not isinstance(p, bytes) and not Path(p).is_file():
                raise QueryError(f"{p} is not a file")
        return self._ctx.embed_images(paths)

    def nearest(self, queries, k: int = 10, classes=None, split: str | None = None,
                where: str | None = None, names: list[str] | None = None,
                include_self: bool = False, recall: float | None = None):
        """The k nearest stored images of each query, their class vote and the distance in
        context (NearestResult: ``.neighbors``, ``.classes``, ``.context`` DataFrames).
        ``id:N`` queries leave their own image out unless ``include_self``. ``recall`` asks an
        approximate index for the cheapest setting measured to reach it (``index.json``)."""
        return self.lands(queries, names, k=k, centroids=0, classes=classes, split=split,
                          where=where, include_self=include_self, recall=recall)[0]

    @staticmethod
    def _nearest(ctx: QueryContext, qs: list[QueryVector], k: int, classes=None,
                 split: str | None = None, where: str | None = None,
                 include_self: bool = False, recall: float | None = None):
        from actdb.query.nearest import nearest

        if ctx.index.ntotal == 0:
            raise QueryError("the store has no images yet; ingest some first")
        allowed = allowed_ids(ctx.store, classes, split, where)
        return nearest(qs, k, ctx, allowed, include_self, recall)

    def centroids(self, queries, k: int = 10, classes=None):
        """Classes ranked by the distance from each query to their centroid, with each
        class's spread (DataFrame)."""
        positive("k", k)
        with self._call() as ctx:
            return self._centroids(ctx, resolve(queries_given(queries), None, ctx), k, classes)

    @staticmethod
    def _centroids(ctx: QueryContext, qs: list[QueryVector], k: int, classes=None):
        from actdb.query.centroids import centroids

        names = parse_classes(classes)
        with ctx.store.reader() as con:
            cent = derived.centroids(con, ctx.store.space.name)
            if names:
                cent = cent[cent.class_key.isin(reads.resolve_classes(con, names))]
        return centroids(qs, cent, k)

    def lands(self, queries, names: list[str] | None = None, *, k: int = 10,
              centroids: int = 10, classes=None, split: str | None = None,
              where: str | None = None, include_self: bool = False,
              recall: float | None = None):
        """Where each query lands, in one call: its ``k`` nearest images (NearestResult) and
        its ``centroids`` nearest class centroids (DataFrame; None when 0), options as
        :meth:`nearest`'s (``classes`` bounds both)."""
        positive("k", k)
        if recall is not None and not 0 < recall <= 1:
            raise UsageError(f"recall must be in (0, 1], not {recall}", param="recall")
        with self._call(index=True, hold=True) as ctx:
            qs = resolve(queries_given(queries), names, ctx)
            near = self._nearest(ctx, qs, k, classes, split, where, include_self, recall)
            return near, self._centroids(ctx, qs, centroids, classes) if centroids else None

    def examples(self, channel: int, k: int = 20):
        """The stored images with the highest pooled value of ``channel`` (ExamplesResult)."""
        from actdb.query.examples import examples

        return examples(self.store, channel, k)

    # -- pictures ----------------------------------------------------------------------------

    def plot(self, kind: str, queries=(), output: str | Path | None = None, *,
             config=None, save_coords: str | Path | None = None,
             progress: Progress | None = None, **options):
        """A matplotlib Figure: ``tsne``, ``umap`` or ``pca`` maps, a channel ``profile``, or
        ``distances`` histograms, with the queries highlighted, or the ``cka`` heatmap of the
        last ``compare``; saved when ``output`` is given (.png, .svg, .pdf). Options are
        :class:`~actdb.options.PlotConfig`'s fields, as ``config`` or keywords over it."""
        from actdb.options import PlotConfig
        from actdb.viz.plot import KINDS, plot

        if kind not in KINDS:  # a picture there is no such thing as (404 in the service)
            raise NotFound(f"unknown plot {kind!r}; use one of {', '.join(KINDS)}")
        writable(output)
        writable(save_coords)
        cfg = configured(PlotConfig, config, options, "plot")
        cfg = replace(cfg, classes=parse_classes(cfg.classes))
        specs = as_list(queries)
        with self._call() as ctx:
            qs = resolve(specs, None, ctx) if specs else []
            return plot(ctx.store, kind, qs, cfg, output=output, save_coords=save_coords,
                        progress=progress)

    def plot_png(self, kind: str, queries=(), **options) -> bytes:
        """``plot`` as PNG bytes (what the service sends); options as ``plot``'s."""
        from actdb.viz.figures import png_bytes

        return png_bytes(self.plot(kind, queries, **options))

    def _map_spec(self, method: str, per_class: int | None, classes, random_classes: int,
                  seed: int):
        from actdb.viz.maps import MapSpec

        names = parse_classes(classes)
        if per_class is None and not names and not random_classes:
            with self.store.reader() as con:
                return MapSpec.default(len(reads.classes_df(con)), method, seed)
        if per_class is not None:
            positive("per_class", per_class)
        return MapSpec.of(method, per_class or 100, names, random_classes, seed)

    def map(self, method: str = "auto", *, per_class: int | None = None, classes=None,
            random_classes: int = 0, seed: int = 0, build: bool = True, queries=(),
            progress: bool | Progress | None = None):
        """The stored 2-D map (StoredMap) of a sample and a projection (``auto``: t-SNE below
        20,000 points, else UMAP; ``umap``, ``tsne``, ``pca``), made and stored when missing
        or stale. ``per_class=None`` with no classes is the default map: every class, at most
        50,000 points. In a notebook it shows itself as a live map with ``queries`` placed;
        its lasso's selection is ``m.selected``."""
        from actdb.viz.maps import Placement

        spec = self._map_spec(method, per_class, classes, random_classes, seed)
        specs = as_list(queries)
        with self._call() as ctx, progress_for(progress, "map") as report:
            m = self._map(ctx, spec, report, build)
            placed = Placement.of(m, resolve(specs, None, ctx), True) if specs else None
        # a handle of its own (the context keeps the map it shares with every caller)
        return replace(m, placed=placed, _widget=None)

    @staticmethod
    def _map(ctx: QueryContext, spec, progress: Progress | None = None, build: bool = True):
        from actdb.viz.maps import get_map

        m = get_map(ctx.store, spec, progress, build=build)
        ctx.keep_map(m)
        return m

    def place(self, queries, map_id: str | None = None, names: list[str] | None = None,
              distances: bool = False):
        """Queries placed into a stored map, the map itself unchanged (Placement:
        ``.coords`` DataFrame name, x, y; with ``distances``, ``.distances`` from each query
        to every map point). ``map_id`` None is the default map (method ``auto``)."""
        from actdb.viz.maps import Placement

        with self._call(intact=False) as ctx:
            m = self._stored_map(ctx, map_id)
            return Placement.of(m, resolve(queries_given(queries), names, ctx), distances)

    def stored_map(self, map_id: str | None = None):
        """A stored map by id (the default map, ``auto``, when None), kept loaded by this space
        while it stays current; NotFound when there is none."""
        with self._call(intact=False) as ctx:
            return self._stored_map(ctx, map_id)

    def _stored_map(self, ctx: QueryContext, map_id: str | None):
        if map_id is None:
            map_id = self._map_spec("auto", None, None, 0, 0).for_store(ctx.store).map_id
        m = ctx.stored_map(map_id)
        if m is None:
            raise NotFound(f"no map {map_id} in the store; make one with actdb map")
        return m

    def export(self, to: str, path: str | Path, *, classes=None, per_class: int | None = None,
               where: str | None = None, seed: int = 0, queries=(), method: str = "auto",
               base_url: str | None = None, progress: Progress | None = None):
        """Write the space (or a selection) for another tool (ExportResult): ``projector``
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
            positive("per_class", per_class)
        writable(path)
        if to == "atlas":
            return self._export_atlas(path, classes, per_class, where, seed, queries, method,
                                      progress)
        with self._call() as ctx:
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

    def _export_atlas(self, path, classes, per_class, where, seed, queries, method, progress):
        from actdb.viz import export as ex

        spec = (self._map_spec(method, per_class, classes, 0, seed) if where is None
                else None)
        specs = as_list(queries)
        with self._call(index=True, hold=True) as ctx:
            qs = resolve(specs, None, ctx) if specs else []
            first = (self._nearest(ctx, qs[:1], 50).classes.class_name.tolist() if qs
                     else None)
            if spec is not None:  # the stored map of this sample (made once, reused)
                return ex.export_atlas(ctx.store, path, qs, stored_map=self._map(
                    ctx, spec, progress), first_classes=first, stage=progress)
            return ex.export_atlas(ctx.store, path, qs, method=method, seed=seed,
                                   ids=allowed_ids(ctx.store, classes, None, where),
                                   per_class=per_class, first_classes=first, stage=progress)

    def atlas(self, channels=None, *, config=None, progress: bool | Callable | None = None,
              stage: Progress | None = None, **options):
        """The channel atlas of the space's layer (AtlasResult): each channel's feature
        visualisation (``batch`` channels optimised at once), what ``models`` predict for it,
        where it lands (``k`` nearest images, class vote, centroids), its top, bottom and
        quantile ``examples`` and the agreement of these, in the ``channels`` table, then a
        static site (``output``, else the store's ``atlas/site``). ``channels``: "0-511",
        "4,17" or a list; None: all. Options are :class:`~actdb.options.AtlasConfig`'s
        fields (declared there once, with their defaults), as ``config`` or keywords that
        override it; ``image_size`` None is the space's. Rerunning continues where a
        run stopped. ``output`` is made when missing."""
        from actdb.atlas.run import parse_channels, run_atlas
        from actdb.options import AtlasConfig

        cfg = configured(AtlasConfig, config, options, "atlas")
        chans = (tuple(parse_channels(channels, self.manifest.dim))
                 if isinstance(channels, str) else tuple(channels) if channels else None)
        out = cfg.output
        if out is not None and Path(out).exists() and not Path(out).is_dir():
            raise UsageError(f"cannot write the atlas into {out}: it is a file, not a folder")
        with self._call():  # a damaged space is refused before any picture is made
            cfg = replace(cfg, channels=chans, models=tuple(cfg.models),
                          image_size=cfg.image_size or self.manifest.image_size)

        def lands(paths, names):
            return self.lands(paths, names, k=cfg.k, centroids=5)

        with progress_for(progress, "atlas") as report:
            return run_atlas(self.store, cfg, lands, report, stage)

    def dream(self, output: str | Path, config=None, progress=None, **options):
        """:func:`actdb.dream` with the space's own network: unless ``model`` names another,
        the options left None (``layer``, ``weights``, ``image_size``, ``preprocess``) are
        this space's recipe, so a picture made here excites the channel the space's vectors
        hold (DreamResult). Options are :class:`~actdb.options.DreamConfig`'s fields."""
        from actdb.featvis.dream import dream as run
        from actdb.options import DreamConfig

        cfg = configured(DreamConfig, config, options, "dream")
        if cfg.model is None:  # this space's network (another model takes none of it)
            m = self.manifest
            own = {"model": m.model, "layer": m.layer, "weights": m.weights,
                   "image_size": m.image_size, "preprocess": m.preprocess}
            cfg = replace(cfg, **{k: v for k, v in own.items() if getattr(cfg, k) is None})
        return run(cfg, output, progress)

    def report(self, output: str | Path, queries, *, config=None,
               progress: Progress | None = None, **options) -> Path:
        """One self-contained HTML file: the queries, their neighbours, class vote, centroid
        ranking, t-SNE and UMAP maps and distance histograms (and, when the store has other
        spaces, where the queries land in each). Options are
        :class:`~actdb.options.ReportConfig`'s fields, as ``config`` or keywords over it."""
        from actdb.options import ReportConfig
        from actdb.viz.report import build_report

        cfg = configured(ReportConfig, config, options, "report")
        cfg = replace(cfg, classes=parse_classes(cfg.classes))
        positive("k", cfg.k)
        writable(output)
        specs = parse_queries(queries_given(queries))  # each file read once
        say = progress or (lambda _: None)
        say("nearest neighbours")
        near, cents = self.lands(specs, k=cfg.k, centroids=10)
        qs = [a.query for a in near.answers]
        across = None
        if self._across and len(self.store.spaces()) > 1 and all(q.askable for q in specs):
            say("every space")
            across = self._across(specs)
        return build_report(self.store, qs, near, cents, output, cfg, progress, across)
