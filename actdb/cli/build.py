"""Commands that build and keep a store: ingest, info, spaces, check, merge, index, stats,
compare."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from actdb.cli.app import (
    JsonOpt,
    Output,
    SpaceOpt,
    StoreOpt,
    command,
    config_options,
    echo_json,
    echo_table,
    fail,
    note,
    open_space,
    open_store,
    output_options,
    progress_bar,
    recipe_options,
)
from actdb.options import CompareConfig, StatsConfig


@command()
@recipe_options
def ingest(
    ctx: typer.Context,
    root: Path = typer.Argument(..., help="Dataset root (ImageNet train/val, Kaggle CLS-LOC, "
                                "flat val, or any class-per-folder tree), or imagenette, "
                                "imagenette-160, imagenette-320 (downloaded, verified)."),
    store: Path = StoreOpt,
    layers: str = typer.Option(None, help="Several layers, comma-separated, from one forward "
                               "pass: a space each (the first is the default of a new "
                               "store). Another model or layer than the store's adds a "
                               "space and embeds every stored image in it.",
                               show_default=False),
    per_class: int = typer.Option(None, help="Seeded random sample of N images per class "
                                  "(across the splits selected: both, or --split's)."),
    limit: int = typer.Option(None, help="Seeded random sample of N images overall."),
    seed: int = typer.Option(0, help="Seed for --per-class and --limit."),
    split: str = typer.Option(None, help="Only this split: train or val (default both)."),
    batch_size: int = typer.Option(None, help="Images per forward pass (default: 32 on a CPU, "
                                   "256 on a GPU)."),
    strict: bool = typer.Option(False, help="Stop with an error at the first bad image."),
    shard: str = typer.Option(None, help="K/N: ingest only this 1/N slice (K = 1..N), for "
                              "several workers; combine with `actdb merge`."),
    workers: int = typer.Option(None, help="Decoding workers (default: 4 threads on a CPU, "
                                "cores - 1 processes when a GPU runs the model)."),
    decoders: str = typer.Option("auto", help="threads | processes | auto (processes when a "
                                 "GPU runs the model)."),
    rows_per_shard: int = typer.Option(1024, help="Images per committed Parquet shard (a "
                                       "killed run loses at most this much work)."),
    engine: str = typer.Option("local", help="local, or ray (Ray Data: decode tasks on every "
                               "core, model actors on GPUs or CPUs, across a cluster)."),
    ray_address: str = typer.Option(None, envvar="RAY_ADDRESS", help="ray: the cluster to "
                                    "join (default: start a local Ray)."),
    actors: int = typer.Option(None, help="ray: model actors (default: one per GPU, else one)."),
    actor_cpus: float = typer.Option(None, help="ray: CPUs per model actor."),
    actor_gpus: float = typer.Option(None, help="ray: GPUs per model actor (default: 1 when "
                                     "the cluster has GPUs)."),
    onnx: bool = typer.Option(True, "--onnx/--no-onnx", envvar="ACTDB_ONNX",
                              help="Keep each fp32 space's model as ONNX, checked against "
                              "Keras, so image queries skip TensorFlow (the export takes "
                              "seconds; bench/runtimes.py). A bf16 space's queries use its Keras "
                              "bf16 model."),
    as_json: bool = JsonOpt,
    recipe: dict = None,
):
    """Embed the images under ROOT into the store (resumes and skips what is there), then
    update its index and statistics, and keep its model as ONNX for queries. Every recipe
    option (--model, --layer, --pool, --weights, --image-size, --resize, --precision,
    --preprocess) defaults to the store's when it exists.

    Example: actdb ingest imagenet/ --per-class 100 --seed 0
    """
    from actdb.ingest.pipeline import RAY_OPTIONS
    from actdb.ingest.recipe import RECIPE

    ray_only = tuple(RAY_OPTIONS) if engine != "ray" else ()  # $RAY_ADDRESS alone: no engine
    options = {k: v for k, v in ctx.params.items()  # the run's options, by name
               if k not in ("root", "store", "as_json", *ray_only, *RECIPE)}
    if engine == "ray":
        _quiet_ray()
    with progress_bar(not as_json, "ingest") as bar:
        result = open_store(store).ingest(root, progress=bar, **options, **recipe)
    _unreached(result.index)
    if as_json:
        echo_json(result.to_dict())
        return
    from actdb import render

    typer.echo(render.ingest_text(result), nl=False)


def _quiet_ray() -> None:
    """Ray Data logs each run at INFO on stderr; the command shows its own progress."""
    import logging

    with contextlib.suppress(ImportError):
        import ray.data  # noqa: F401 - configures Ray's loggers, which are then quieted

        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)


@command()
def info(space: str = SpaceOpt, store: Path = StoreOpt, as_json: bool = JsonOpt):
    """What is in the store: model, layer, counts, failures, size, index, statistics, and
    its spaces.

    Example: actdb info --store actdb-store --json
    """
    d = open_space(store, space).info()
    if as_json:
        echo_json(d)
    else:
        from actdb import render

        typer.echo(render.info_text(d), nl=False)
    if d["damaged"]:
        fail(f"store damaged: {'; '.join(d['damaged'])}; run `actdb check --repair`", 1)


@command()
@output_options
def spaces(store: Path = StoreOpt, out: Output = None):
    """The store's spaces (one recipe's vectors each: model, layer, pooling, size,
    precision), with their counts and index; the first is the default.

    Example: actdb spaces && actdb nearest node4.png --space block4_conv4
    """
    from actdb import render

    cols = ["name", "default", "model", "layer", "pool", "dim", "image_size", "precision",
            "vectors", "shards", "index", "onnx", "view"]
    out.rows(render.records(open_store(store).spaces()), cols)


@command()
def check(store: Path = StoreOpt,
          repair: bool = typer.Option(False, "--repair", help="Rebuild what can be rebuilt "
                                      "(index, statistics); drop lost shards so the next "
                                      "ingest embeds their images again."),
          as_json: bool = JsonOpt):
    """Verify the manifest, catalog, shards, index and statistics agree; exit 1 when not.

    Example: actdb check --store actdb-store --repair
    """
    rep = open_store(store).check(repair=repair)
    if as_json:
        echo_json(rep.to_dict())
    else:
        from actdb import render

        typer.echo(render.check_text(rep), nl=False)
    if not rep.ok:
        raise typer.Exit(1)


@command()
def merge(
    out: Path = typer.Argument(..., help="Store to create (or add to)."),
    stores: list[Path] = typer.Argument(..., help="Stores with identical manifests."),
    as_json: bool = JsonOpt,
):
    """Combine stores ingested with --shard K/N (or any identical manifests) into OUT, then
    index it and compute its statistics.

    Example: actdb merge all-store s1 s2 s3
    """
    import actdb

    res = actdb.merge(out, stores)
    if as_json:
        echo_json(res.to_dict())
    else:
        typer.echo(f"merged {len(res.sources)} stores into {res.out}: added {res.added}, "
                   f"skipped {res.skipped} already present, {res.renumbered} given new ids, "
                   f"{res.failures} failures recorded")


@command("index")
def index_cmd(
    space: str = SpaceOpt,
    store: Path = StoreOpt,
    kind: str = typer.Option("auto", help="auto (exact up to ~100k images, else ivfpq) | flat "
                             "| ivfpq | ivf | hnsw."),
    metric: str = typer.Option("l2", help="l2 (the original study's) or cosine."),
    target_recall: float = typer.Option(0.95, help="Recall@50 the approximate kinds must reach."),
    as_json: bool = JsonOpt,
):
    """(Re)build the FAISS index of the store (of one space: --space).

    Example: actdb index --kind hnsw --metric cosine
    """
    info_ = open_space(store, space).index(kind=kind, metric=metric, target_recall=target_recall)
    _unreached(info_)
    if as_json:
        echo_json(info_)
    else:
        typer.echo(f"built {info_['kind']} index ({info_['metric']}) over {info_['ntotal']} "
                   f"vectors in {info_['build_seconds']}s, recall@50 {info_['recall_at_50']}")


def _unreached(info: dict | None) -> None:
    """Say on stderr which recall levels no setting of the index reached."""
    if info and info.get("unreached_recall"):
        levels = ", ".join(str(r) for r in info["unreached_recall"])
        note(f"no setting of this {info['kind']} index reaches recall@50 {levels}; the best "
             f"measured, {info['recall_at_50']}, answers for it (try --kind flat or hnsw)")


@command()
@output_options
@config_options(StatsConfig)
def stats(
    space: str = SpaceOpt,
    store: Path = StoreOpt,
    out: Output = None,
    config: StatsConfig = None,
):
    """(Re)compute centroids, class_stats and pair_stats. Ingest does this too, with the
    settings recorded here.

    Example: actdb stats --seed 1 && actdb sql "SELECT * FROM pair_stats"
    """
    res = open_space(store, space).stats(config)
    cols = ["kind", "count", "sampled", "mean", "std", "p05", "p50", "p95"]
    if not out.table:
        return out.rows(res["pair_stats"], cols, whole=res)
    echo_table(res["pair_stats"], cols,
               title=f"{res['images']} images, {res['classes']} classes ({res['seconds']}s)")


@command()
@output_options
@config_options(CompareConfig)
def compare(
    store: Path = StoreOpt,
    out: Output = None,
    config: CompareConfig = None,
):
    """How alike the store's spaces are (linear CKA of every pair) and how well each keeps
    classes apart (k-NN accuracy, same/different-class distance ratio), on one shared
    sample; kept in the space_similarity and space_separation tables.

    Example: actdb compare --sample 50000 && actdb plot cka -o cka.png
    """
    from actdb import render

    res = open_store(store).compare(config)
    sim = ["space_a", "space_b", "cka", "method", "n", "seed"]
    sep = ["space", "knn_accuracy", "k", "queries", "same_over_different", "n", "seed"]
    if not out.table:
        return out.rows(render.records(res.similarity), sim, whole=res.to_dict())
    echo_table(render.records(res.separation), sep, title="class separation")
    echo_table(render.records(res.similarity), sim,
               title=f"linear CKA ({res.seconds:.1f} s)")
