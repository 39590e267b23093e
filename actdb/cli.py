"""The ``actdb`` command line: thin commands over the library.

This is the only module that imports Typer. Each command calls one library function and
renders its result; library errors (:class:`ActdbError`) become one line on stderr and a
non-zero exit. Heavy imports happen inside commands, so ``actdb --help`` is instant.
"""

from __future__ import annotations

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


def _progress(enabled: bool, label: str):
    """A rich progress bar (images/s, ETA) on a terminal; None elsewhere."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn,
                               TextColumn, TimeRemainingColumn)

    class Rate(TextColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return f"{speed:.1f} img/s" if speed else "…"

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                    Rate(""), TimeRemainingColumn(), console=Console(stderr=True))


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
    bar = _progress(not as_json, "ingest")
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
