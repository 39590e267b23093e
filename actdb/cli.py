"""The ``actdb`` command line: thin commands over the library.

This is the only module that imports Typer. Each command calls one library function and
renders its result; library errors (:class:`ActdbError`) become one line on stderr and a
non-zero exit. Heavy imports happen inside commands, so ``actdb --help`` is instant.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path

import typer

from actdb.errors import ActdbError

app = typer.Typer(
    help="actdb: an activation database for studying what CNNs have learned.\n\n"
    "Example: actdb ingest imagenet/ --per-class 100 && actdb nearest node4.png -k 50",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

StoreOpt = typer.Option(None, "--store", envvar="ACTDB_STORE",
                        help="Store directory (default $ACTDB_STORE, else ./actdb-store).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(fn):
    """Turn library errors into one line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ActdbError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; run the same command again to resume", 130)

    return wrapper


def command(*args, **kwargs):
    def deco(fn):
        return app.command(*args, **kwargs)(handle_errors(fn))

    return deco


def _print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _progress(enabled: bool, unit: str = "img/s"):
    """A rich progress bar (rate, ETA) on a terminal; None elsewhere. The task's description
    is shown first, so callers can put live values there."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    class Rate(TextColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return f"{speed:.1f} {unit}" if speed else "…"

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TaskProgressColumn(), Rate(""), TimeRemainingColumn(),
                    console=Console(stderr=True))


@command()
def ingest(
    root: Path = typer.Argument(..., help="Dataset root (ImageNet train/val, Kaggle CLS-LOC, "
                                "flat val, or any class-per-folder tree)."),
    store: Path = StoreOpt,
    model: str = typer.Option("vgg19", help="vgg19, vgg16 or resnet50."),
    layer: str = typer.Option(None, help="Layer to read (default: vgg19 block5_conv4, vgg16 "
                              "block5_conv3, resnet50 conv5_block3_out)."),
    pool: str = typer.Option("mean", help="mean (the original study's) or max over positions."),
    weights: str = typer.Option("imagenet", help="imagenet | PATH to a Keras weights file | "
                                "random:SEED."),
    image_size: int = typer.Option(224, help="Square input size in pixels."),
    resize: str = typer.Option("squash", help="squash (whole image to size x size, bilinear) "
                               "or center-crop. Query images get the same."),
    per_class: int = typer.Option(None, help="Seeded random sample of N images per class."),
    limit: int = typer.Option(None, help="Seeded random sample of N images overall."),
    seed: int = typer.Option(0, help="Seed for --per-class and --limit."),
    split: str = typer.Option(None, help="Only this split (train or val); default all."),
    batch_size: int = typer.Option(32, help="Images per forward pass."),
    precision: str = typer.Option("auto", help="auto | fp32 | bf16 (auto: bf16 where the "
                                  "hardware has it; see README)."),
    strict: bool = typer.Option(False, help="Stop with an error at the first bad image."),
    shard: str = typer.Option(None, help="K/N: ingest only this 1/N slice (K = 1..N), for "
                              "several workers; combine with `actdb merge`."),
    workers: int = typer.Option(4, help="Decoding threads."),
    rows_per_shard: int = typer.Option(1024, help="Images per committed Parquet shard (a "
                                       "killed run loses at most this much work)."),
    as_json: bool = JsonOpt,
):
    """Embed the images under ROOT into the store (resumes and skips what is there).

    Example: actdb ingest imagenet/ --per-class 100 --seed 0
    """
    from actdb.ingest.pipeline import IngestConfig
    from actdb.ingest.pipeline import ingest as run
    from actdb.models.embed import EmbedConfig

    cfg = IngestConfig(
        root=root, store=store, per_class=per_class, limit=limit, seed=seed, split=split,
        batch_size=batch_size, strict=strict, shard=shard, workers=workers,
        rows_per_shard=rows_per_shard,
        embed=EmbedConfig(model=model, layer=layer, pool=pool, weights=weights,
                          image_size=image_size, resize=resize, precision=precision),
    )
    bar = _progress(not as_json)
    if bar is None:
        result = run(cfg)
    else:
        with bar:
            task = bar.add_task("ingest", total=None)
            result = run(cfg, progress=lambda done, total: bar.update(task, completed=done,
                                                                      total=total))
    if as_json:
        _print_json(result.to_dict())
    else:
        c = _console()
        c.print(f"layout: {result.layout}" + (f" ({'; '.join(result.layout_notes)})"
                                              if result.layout_notes else ""))
        for path, reason in result.failures[:20]:
            c.print(f"  failed: {path}: {reason}")
        if len(result.failures) > 20:
            c.print(f"  ... and {len(result.failures) - 20} more (see the failures table)")
        c.print(f"ingested {result.ingested}, skipped {result.skipped} already present, "
                f"failed {result.failed} in {result.seconds:.1f}s "
                f"({result.images_per_s:.1f} img/s, {result.precision}) -> {result.store}")
        if result.index:
            c.print(f"index: {result.index['kind']} ({result.index['metric']}), "
                    f"{result.index['ntotal']} vectors")


@command()
def info(store: Path = StoreOpt, as_json: bool = JsonOpt):
    """What is in the store: model, layer, counts, failures, size, index.

    Example: actdb info --store actdb-store --json
    """
    from actdb.store.store import Store

    d = Store.open(store).info()
    if as_json:
        _print_json(d)
        return
    c = _console()
    c.print(f"store      {d['store']}")
    c.print(f"model      {d['model']} / {d['layer']} / {d['pool']}-pooled, dim {d['dim']}")
    c.print(f"input      {d['image_size']}px, resize {d['resize']}, precision {d['precision']}")
    c.print(f"weights    {d['weights']} (sha256 {d['weights_sha256'][:16]}…)")
    splits = ", ".join(f"{k} {v}" for k, v in d["images_per_split"].items()) or "none"
    c.print(f"images     {d['images']} ({splits}) in {d['classes']} classes")
    c.print(f"failures   {d['failures']}")
    c.print(f"size       {d['size_bytes'] / 1e6:.1f} MB in {d['shards']} shards, "
            f"{d['runs']} runs")
    ix = d["index"]
    if ix:
        c.print(f"index      {ix['kind']} ({ix['metric']}), {ix['ntotal']} vectors, "
                f"recall@50 {ix.get('recall_at_50')}")
    else:
        c.print("index      none (run `actdb index`)")


@command()
def check(store: Path = StoreOpt, as_json: bool = JsonOpt):
    """Verify manifest, catalog, Parquet shards and index agree; exit 1 when not.

    Example: actdb check --store actdb-store
    """
    from actdb.store.check import check_store
    from actdb.store.store import resolve_store_path

    rep = check_store(resolve_store_path(store))
    if as_json:
        _print_json({"ok": rep.ok, **rep.__dict__})
    else:
        for p in rep.problems:
            typer.echo(f"problem: {p}")
        state = "ok" if rep.ok else f"{len(rep.problems)} problem(s)"
        typer.echo(f"{state}: {rep.images} images, {rep.vectors} vectors in {rep.shards} shards"
                   + (f", index holds {rep.index_ids}" if rep.index_ids is not None else ""))
    if not rep.ok:
        raise typer.Exit(1)


@command()
def merge(
    out: Path = typer.Argument(..., help="Store to create (or add to)."),
    stores: list[Path] = typer.Argument(..., help="Stores with identical manifests."),
    as_json: bool = JsonOpt,
):
    """Combine stores ingested with --shard K/N (or any identical manifests) into OUT.

    Example: actdb merge all-store s1 s2 s3
    """
    from actdb.index.store_index import update_index
    from actdb.store.merge import merge_stores

    res = merge_stores(out, stores)
    update_index(out)
    if as_json:
        _print_json(res.__dict__)
    else:
        typer.echo(f"merged {len(res.sources)} stores into {res.out}: added {res.added}, "
                   f"skipped {res.skipped} already present, {res.renumbered} given new ids")


@command("index")
def index_cmd(
    store: Path = StoreOpt,
    kind: str = typer.Option("auto", help="auto | flat | ivf | hnsw."),
    metric: str = typer.Option("l2", help="l2 (the original study's) or cosine."),
    target_recall: float = typer.Option(0.95, help="Recall@50 the approximate kinds must reach."),
    as_json: bool = JsonOpt,
):
    """(Re)build the FAISS index of the store.

    Example: actdb index --kind hnsw --metric cosine
    """
    from actdb.index.faiss_index import IndexConfig
    from actdb.index.store_index import index_store

    info_ = index_store(store, IndexConfig(kind=kind, metric=metric, target_recall=target_recall))
    if as_json:
        _print_json(info_)
    else:
        typer.echo(f"built {info_['kind']} index ({info_['metric']}) over {info_['ntotal']} "
                   f"vectors in {info_['build_seconds']}s, recall@50 {info_['recall_at_50']}")


def _table(df, columns: list[str], title: str | None = None, floats: str = "{:.4g}"):
    """Render selected DataFrame columns as a rich table."""
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for c in columns:
        t.add_column(c, justify="right" if df[c].dtype.kind in "iuf" else "left")
    for row in df[columns].itertuples(index=False):
        t.add_row(*[floats.format(v) if isinstance(v, float) else ("" if v is None else str(v))
                    for v in row])
    _console().print(t)


def _context_line(c) -> str:
    line = f"nearest-neighbour distance {c['nn_distance']:.4g}"
    if c.get("nn_percentile") is not None:
        line += (f", farther than {c['nn_percentile']:.1f}% of stored images' nearest "
                 f"neighbours (their median {c['store_median_nn_distance']:.4g})")
    if c.get("store_median_random_pair") is not None:
        line += f"; median random-pair distance {c['store_median_random_pair']:.4g}"
    return line


QueriesArg = typer.Argument(..., help="Image files, id:<image_id> of stored images, or .npy "
                            "vectors of the store's dim.")


@command()
def nearest(
    queries: list[str] = QueriesArg,
    k: int = typer.Option(10, "-k", "--k", help="Number of neighbours."),
    classes: str = typer.Option(None, help="Only these classes (comma-separated short names "
                                "or wnids)."),
    split: str = typer.Option(None, help="Only this split."),
    where: str = typer.Option(None, help="Only images matching this SQL predicate on `images`."),
    name: list[str] = typer.Option(None, help="Name to cache the query under (default: file "
                                   "stem); repeat for several queries."),
    store: Path = StoreOpt,
    as_json: bool = JsonOpt,
    as_csv: bool = typer.Option(False, "--csv", help="Print the neighbours as CSV."),
):
    """Which stored images and classes does each query land near, and how far is it?

    Example: actdb nearest node4.png -k 50 --classes sea_cucumber,groenendael
    """
    from actdb.query.db import Database

    res = Database.open(store).nearest(queries, k=k, classes=classes, split=split,
                                       where=where, names=name)
    if as_json:
        _print_json(res.to_dict())
        return
    if as_csv:
        out = res.neighbors.merge(res.context, on="query", how="left")
        typer.echo(out.to_csv(index=False), nl=False)
        return
    for q in res.to_dict()["queries"]:
        import pandas as pd

        nb = pd.DataFrame(q["neighbors"])
        if nb.empty:
            typer.echo(f"{q['query']}: no images match")
            continue
        nb["wnid"] = nb["synset"]
        _table(nb, ["rank", "distance", "class_name", "wnid", "path"],
               title=f"{q['query']}: {len(nb)} nearest ({res.metric})")
        cl = pd.DataFrame(q["classes"])
        cl["share"] = cl["share"].map("{:.0%}".format)
        _table(cl, ["class_name", "synset", "count", "share"], title="class vote")
        typer.echo(_context_line(q["context"]))


@command("centroids")
def centroids_cmd(
    queries: list[str] = QueriesArg,
    k: int = typer.Option(10, "-k", "--k", help="Number of classes."),
    classes: str = typer.Option(None, help="Only these classes (comma-separated)."),
    store: Path = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Rank classes by the distance from the query to each class centroid.

    Example: actdb centroids node4.png -k 10
    """
    from actdb.query.db import Database

    df = Database.open(store).centroids(queries, k=k, classes=classes)
    if as_json:
        _print_json(df.to_dict("records"))
        return
    for q, part in df.groupby("query", sort=False):
        _table(part, ["rank", "distance", "class_name", "synset", "n", "class_mean_dist",
                      "class_p95_dist", "inside"], title=f"{q}: nearest class centroids")


@command()
def stats(
    store: Path = StoreOpt,
    seed: int = typer.Option(0, help="Seed of the pair samples."),
    pairs_per_class: int = typer.Option(500, help="Pairs per class (all when fewer exist)."),
    pair_sample: int = typer.Option(100_000, help="Random pairs for the random-pair row."),
    as_json: bool = JsonOpt,
):
    """(Re)compute centroids, class_stats and pair_stats (ingest does this too).

    Example: actdb stats --seed 1 && actdb sql "SELECT * FROM pair_stats"
    """
    from actdb.query.stats import StatsConfig, compute_stats
    from actdb.store.store import resolve_store_path

    res = compute_stats(resolve_store_path(store), StatsConfig(
        seed=seed, pairs_per_class=pairs_per_class, pair_sample=pair_sample))
    if as_json:
        _print_json(res)
        return
    import pandas as pd

    _table(pd.DataFrame(res["pair_stats"]), ["kind", "count", "mean", "std", "p05", "p50",
                                             "p95"],
           title=f"{res['images']} images, {res['classes']} classes ({res['seconds']}s)")


@command()
def sql(
    query: str = typer.Argument(..., help="One SQL statement over the store's views."),
    store: Path = StoreOpt,
    fmt: str = typer.Option("table", "--format", help="table | csv | json | parquet."),
    output: Path = typer.Option(None, "-o", "--output", help="Write to this file."),
):
    """Read-only DuckDB SQL over images, activations, classes, centroids, class_stats,
    pair_stats, queries, failures.

    Example: actdb sql "SELECT class_name, mean_dist FROM class_stats ORDER BY mean_dist LIMIT 5"
    """
    from actdb.errors import UsageError
    from actdb.query.sql import run_sql

    if fmt not in ("table", "csv", "json", "parquet"):
        raise UsageError("--format must be table, csv, json or parquet")
    table = run_sql(store, query)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        if output is None:
            raise UsageError("--format parquet needs -o FILE")
        pq.write_table(table, output)
        return
    df = table.to_pandas()
    if fmt == "table" and output is None:
        _table(df, list(df.columns))
        return
    text = df.to_csv(index=False) if fmt == "csv" else \
        df.to_json(orient="records", indent=2, default_handler=str) + "\n"
    if fmt == "table":
        text = df.to_string(index=False) + "\n"
    if output:
        output.write_text(text)
    else:
        typer.echo(text, nl=False)


@command("examples")
def examples_cmd(
    channel: int = typer.Option(..., "--channel", "-c", help="Channel index (0-based)."),
    k: int = typer.Option(20, "-k", "--k", help="Number of images."),
    store: Path = StoreOpt,
    as_json: bool = JsonOpt,
):
    """The stored images that excite one channel most (as OpenAI Microscope shows them).

    Example: actdb examples --channel 4 -k 20
    """
    from actdb.query.db import Database

    res = Database.open(store).examples(channel, k)
    if as_json:
        _print_json(res.to_dict())
        return
    _table(res.top, ["rank", "value", "class_name", "synset", "path"],
           title=f"channel {channel}: top {len(res.top)} of the store "
                 f"(mean {res.channel_mean:.4g}, max {res.channel_max:.4g})")
    cl = res.classes.copy()
    cl["share"] = cl["share"].map("{:.0%}".format)
    _table(cl, ["class_name", "synset", "count", "share"], title="classes among them")
    if not res.queries.empty:
        _table(res.queries, ["name", "value", "percentile"], title="cached queries")


@command()
def dream(
    output: Path = typer.Option(..., "-o", "--output", help="PNG to write (plus a .json "
                                "sidecar with every parameter and the objective per step)."),
    model: str = typer.Option("vgg19", help="vgg19, vgg16 or resnet50."),
    layer: str = typer.Option(None, help="Layer (default: the model's default layer)."),
    channel: int = typer.Option(4, help="Channel to maximise (0-based)."),
    weights: str = typer.Option("imagenet", help="imagenet | PATH | random:SEED."),
    size: int = typer.Option(224, help="Image size in pixels."),
    steps: int = typer.Option(None, help="Optimisation steps (seed: 100, improved: 256)."),
    step_size: float = typer.Option(None, help="seed: gradient step (0.1); improved: Adam "
                                    "learning rate (0.05)."),
    seed: int = typer.Option(0, help="Random seed of the start image."),
    recipe: str = typer.Option("improved", help="seed (the original write-up, quirks "
                               "included) or improved (Fourier + decorrelated colour + "
                               "jitter/scale robustness)."),
    objective: str = typer.Option("channel", help="channel (mean over positions) or neuron "
                                  "(centre position)."),
    as_json: bool = JsonOpt,
):
    """Make a feature visualization: an image optimised to excite one channel.

    Example: actdb dream --channel 4 --recipe seed --steps 100 --step-size 0.1 -o node4.png
    """
    from actdb.featvis.dream import DreamConfig
    from actdb.featvis.dream import dream as run

    cfg = DreamConfig(model=model, layer=layer, channel=channel, weights=weights, size=size,
                      steps=steps, step_size=step_size, seed=seed, recipe=recipe,
                      objective=objective)
    bar = _progress(not as_json, "steps/s")
    if bar is None:
        res = run(cfg, output)
    else:
        with bar:
            task = bar.add_task("dream", total=None)

            def show(step, total, value):
                bar.update(task, completed=step, total=total,
                           description=f"objective {value:.4g}")

            res = run(cfg, output, progress=show)
    if as_json:
        _print_json(res.__dict__)
    else:
        typer.echo(f"wrote {res.image} and {res.sidecar}: objective {res.start_activation:.4g} "
                   f"at the start, {res.final_activation:.4g} on the saved image")


@command()
def predict(
    images: list[Path] = typer.Argument(..., help="Image files."),
    models: str = typer.Option("vgg19,vgg16,resnet50", help="Comma-separated models."),
    top: int = typer.Option(3, help="Classes per model."),
    weights: list[str] = typer.Option(None, help="imagenet | PATH | random:SEED for all "
                                      "models, or MODEL=SOURCE per model; repeatable."),
    as_json: bool = JsonOpt,
):
    """What do full ImageNet classifiers call these images? (offline class names)

    Example: actdb predict node4.png --models vgg19,vgg16,resnet50 --top 3
    """
    from actdb.models.predict import PredictConfig, parse_weights_options
    from actdb.models.predict import predict as run

    default, per_model = parse_weights_options(weights)
    cfg = PredictConfig(models=tuple(m.strip() for m in models.split(",") if m.strip()),
                        weights=per_model, default_weights=default, top=top)
    res = run(images, cfg)
    if as_json:
        _print_json(res)
        return
    for r in res:
        tops = ", ".join(f"('{t['wnid']}', '{t['class_name']}', {t['probability']:.4g})"
                         for t in r["top"])
        typer.echo(f"{r['image']} {r['model']}: [{tops}]")


@command()
def embed(
    images: list[Path] = typer.Argument(..., help="Image files."),
    output: Path = typer.Option(..., "-o", "--output", help="FILE.npy or FILE.parquet."),
    store: Path = typer.Option(None, "--store", envvar="ACTDB_STORE",
                               help="Embed exactly as this store's images (default when no "
                               "--model is given)."),
    model: str = typer.Option(None, help="Embed with this recipe instead of a store's."),
    layer: str = typer.Option(None),
    pool: str = typer.Option("mean"),
    weights: str = typer.Option("imagenet"),
    image_size: int = typer.Option(224),
    resize: str = typer.Option("squash"),
    precision: str = typer.Option("auto"),
):
    """Write the pooled vector(s) of images, as `nearest` computes them, to .npy or Parquet.

    Example: actdb embed node4.png -o node4.npy && actdb nearest node4.npy -k 50
    """
    from actdb.models.embed import EmbedConfig
    from actdb.query.vectors import embed_images, write_vectors

    cfg = None if model is None else EmbedConfig(
        model=model, layer=layer, pool=pool, weights=weights, image_size=image_size,
        resize=resize, precision=precision)
    names, vecs = embed_images(images, store=store, config=cfg)
    write_vectors(output, names, vecs)
    typer.echo(f"wrote {len(names)} vector(s) of dim {vecs.shape[1]} to {output}")


plot_app = typer.Typer(help="Plots with the query highlighted: tsne, umap, pca, profile, "
                       "distances.\n\nExample: actdb plot tsne --query node4.png "
                       "--classes sea_cucumber,groenendael --random-classes 10 -o tsne.png",
                       no_args_is_help=True, rich_markup_mode=None)
app.add_typer(plot_app, name="plot")

ClassesOpt = typer.Option(None, help="Classes to show (comma-separated short names or wnids; "
                          "default: all when no --random-classes).")
RandomOpt = typer.Option(0, "--random-classes", help="Also show N random other classes.")
OutOpt = typer.Option(..., "-o", "--output", help="Figure file: .png, .svg or .pdf.")
SeedOpt = typer.Option(0, help="Seed of the sample and the projection.")


@contextlib.contextmanager
def _stages(enabled: bool = True):
    """Yield a callback that shows the current long step on a terminal spinner."""
    if not enabled or not sys.stderr.isatty():
        yield lambda _msg: None
        return
    from rich.console import Console

    with Console(stderr=True).status("working") as status:
        yield lambda msg: status.update(msg)


def _plot(kind: str, queries, classes, output, store, random_classes: int = 0,
          per_class: int = 100, seed: int = 0, log: bool = False, bins: int = 40,
          save_coords=None) -> None:
    from actdb.query.db import Database
    from actdb.query.filters import parse_classes
    from actdb.viz.plot import PlotConfig, plot

    cfg = PlotConfig(parse_classes(classes), random_classes, per_class, seed, log, bins)
    with _stages() as stage:
        res = plot(Database.open(store), kind, queries or [], output, cfg, save_coords, stage)
    typer.echo(f"wrote {res.output}" + (f" ({res.images} images)" if res.images else "")
               + (f", coordinates in {res.coords}" if res.coords else ""))


def _add_map_command(method: str, label: str) -> None:
    def cmd(
        query: list[str] = typer.Option(None, "--query", help="Query image/id:/npy to "
                                        "highlight; repeatable."),
        classes: str = ClassesOpt,
        random_classes: int = RandomOpt,
        per_class: int = typer.Option(100, help="Images per class (seeded sample)."),
        seed: int = SeedOpt,
        output: Path = OutOpt,
        save_coords: Path = typer.Option(None, help="Save coordinates, sample ids and "
                                         "parameters to this .parquet."),
        store: Path = StoreOpt,
    ):
        _plot(method, query, classes, output, store, random_classes, per_class, seed,
              save_coords=save_coords)

    cmd.__doc__ = (f"{label} map of stored vectors coloured by class, queries on top.\n\n"
                   f"Example: actdb plot {method} --query node4.png --classes "
                   f"sea_cucumber,groenendael --random-classes 10 -o {method}.png")
    plot_app.command(method)(handle_errors(cmd))


for _method, _label in (("tsne", "t-SNE"), ("umap", "UMAP"), ("pca", "PCA")):
    _add_map_command(_method, _label)


@plot_app.command("profile")
@handle_errors
def plot_profile(
    queries: list[str] = QueriesArg,
    classes: str = ClassesOpt,
    output: Path = OutOpt,
    store: Path = StoreOpt,
):
    """The query's channel values, overlaid with each named class's mean profile.

    Example: actdb plot profile node4.png --classes sea_cucumber,groenendael -o profile.png
    """
    _plot("profile", queries, classes, output, store)


@plot_app.command("distances")
@handle_errors
def plot_distances(
    queries: list[str] = QueriesArg,
    classes: str = ClassesOpt,
    random_classes: int = RandomOpt,
    seed: int = SeedOpt,
    log: bool = typer.Option(False, "--log", help="Log distance axis (the query may be "
                             "orders of magnitude farther than in-data pairs)."),
    bins: int = typer.Option(40, help="Histogram bins."),
    output: Path = OutOpt,
    store: Path = StoreOpt,
):
    """Histograms of distances from the query to every image of each class, with the
    store's same-class / different-class / random pair distances for context.

    Example: actdb plot distances node4.png --classes sea_cucumber,groenendael
    --random-classes 10 --log -o dist.png
    """
    _plot("distances", queries, classes, output, store, random_classes, seed=seed, log=log,
          bins=bins)


@command()
def report(
    queries: list[str] = QueriesArg,
    output: Path = typer.Option("report.html", "-o", "--output", help="HTML file to write."),
    k: int = typer.Option(12, "-k", "--k", help="Neighbours shown per query."),
    classes: str = ClassesOpt,
    random_classes: int = RandomOpt,
    per_class: int = typer.Option(100, help="Images per class in the maps."),
    seed: int = SeedOpt,
    store: Path = StoreOpt,
):
    """One self-contained HTML report: query, neighbours, class vote, centroids, t-SNE and
    UMAP maps, distance histograms (images embedded; opens offline).

    Example: actdb report node4.png -o report.html
    """
    from actdb.query.db import Database
    from actdb.query.filters import parse_classes
    from actdb.viz.plot import PlotConfig
    from actdb.viz.report import ReportConfig, build_report

    db = Database.open(store)
    cfg = ReportConfig(k=k, plot=PlotConfig(parse_classes(classes), random_classes,
                                            per_class, seed))
    with _stages() as stage:
        path = build_report(db, queries, output, cfg, stage)
    typer.echo(f"wrote {path}")


@command("serve")
def serve_cmd(
    store: Path = StoreOpt,
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, help="Port."),
    token: str = typer.Option(None, envvar="ACTDB_TOKEN", help="Require this token on every "
                              "API call (Authorization: Bearer TOKEN)."),
    max_upload_mb: float = typer.Option(8.0, help="Largest accepted upload, in MB."),
):
    """HTTP API and web page over a store, with the model kept warm.

    Example: actdb serve --store actdb-store --port 8000, then open http://127.0.0.1:8000/
    """
    from actdb.serve.app import ServeConfig, serve

    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        typer.echo(f"warning: binding {host} without --token: anyone who can reach this "
                   "port can query the store (the API has no authentication)", err=True)
    serve(ServeConfig(store=store, token=token,
                      max_upload_bytes=int(max_upload_mb * 1024 * 1024)), host, port)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
