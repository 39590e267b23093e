"""The ``actdb`` command line: each command parses its options, calls one method of
``actdb.open()`` (or one module function) and renders the result.

This is the only module that imports Typer. User mistakes (an :class:`ActdbError`, or an
``OSError`` such as a missing folder for ``-o``) become one line on stderr and a non-zero exit,
never a traceback. Heavy imports happen inside commands, so ``actdb --help`` is instant.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path

import typer

from actdb.errors import ActdbError, ActdbWarning, UsageError

app = typer.Typer(
    help="actdb: an activation database for studying what CNNs have learned.\n\n"
    "Example: actdb ingest imagenet/ --per-class 100 && actdb dream --channel 4 -o node4.png "
    "&& actdb nearest node4.png -k 50",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

StoreOpt = typer.Option(None, "--store", help="Store directory (default $ACTDB_STORE, else "
                        "./actdb-store).", show_default=False)
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")
QueriesArg = typer.Argument(..., help="Image files, id:<image_id> of stored images, or .npy "
                            "vectors of the store's dim.")
ClassesOpt = typer.Option(None, help="Only these classes (comma-separated short names or "
                          "wnids).")

def _option_names(fn) -> dict[str, str]:
    """A command's options by parameter name (``image_size`` -> ``--image-size``), read from
    its own declarations as Typer reads them."""
    import inspect

    from typer.models import OptionInfo

    names = {}
    for name, p in inspect.signature(fn).parameters.items():
        if isinstance(p.default, OptionInfo):
            decls = [d.split("/")[0] for d in p.default.param_decls or () if d.startswith("-")]
            names[name] = decls[0] if decls else "--" + name.replace("_", "-")
    return names


def as_option_names(message: str, params: tuple[str, ...], options: dict[str, str]) -> str:
    """Reword each library parameter an error names at the start of one of its "; " parts to
    the command's option for it (``k must`` -> ``-k must``).

    >>> as_option_names("image_size 64 conflicts with the store's 32; pool max conflicts",
    ...                 ("image_size", "pool"), {"image_size": "--image-size", "pool": "--pool"})
    "--image-size 64 conflicts with the store's 32; --pool max conflicts"
    """
    def reword(part: str) -> str:
        for p in params:
            for lead in ("", "bad "):
                head, rest = part[:len(lead + p)], part[len(lead + p):]
                if p in options and head == lead + p and not rest[:1].isidentifier():
                    return lead + options[p] + rest
        return part

    return "; ".join(reword(part) for part in message.split("; "))


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _notes(fn):
    """Print each ActdbWarning the command raises as one ``note:`` line on stderr, when it is
    raised; other warnings show as Python shows them."""
    import warnings

    with warnings.catch_warnings():  # restores the filters and showwarning afterwards
        warnings.simplefilter("always", ActdbWarning)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, ActdbWarning):
                note = as_option_names(str(message), message.params, _option_names(fn))
                typer.echo(f"note: {note}", err=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def handle_errors(fn):
    """Turn user mistakes into one line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with _notes(fn):
                return fn(*args, **kwargs)
        except ActdbError as exc:
            _fail(as_option_names(str(exc), exc.params, _option_names(fn)), exc.exit_code)
        except BrokenPipeError:  # `actdb sql ... | head`: the reader left; go as Unix tools go
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}", 1)
        except KeyboardInterrupt:
            _fail("interrupted; run the same command again to resume", 130)

    return wrapper


def command(*args, **kwargs):
    def deco(fn):
        return app.command(*args, **kwargs)(handle_errors(fn))

    return deco


class Output:
    """How a command that prints rows prints them: ``--format`` (``--json``, ``--csv``) and
    ``-o``, shared by every such command (see :func:`output_options`)."""

    def __init__(self, fmt: str, path: Path | None):
        self.fmt, self.path = fmt, path

    @property
    def table(self) -> bool:
        """The command draws its own tables (to the terminal, or TSV in a pipe)."""
        return self.fmt == "table" and self.path is None

    def rows(self, rows: list[dict], columns: list[str], whole=None) -> None:
        """Print (or write to ``-o``) the rows; JSON prints ``whole`` when given."""
        from actdb import render

        text = render.write_rows(rows, columns, self.fmt, self.path, whole)
        if text is not None:
            typer.echo(text, nl=False)


def output_options(fn):
    """Give a command the shared output options; it receives them as ``out: Output``."""
    import inspect
    import typing

    extra = {
        "fmt": (str, typer.Option("table", "--format", help="table (TSV when piped) | tsv | "
                                  "csv | json | parquet (with -o).")),
        "as_json": (bool, typer.Option(False, "--json", help="The same as --format json.")),
        "as_csv": (bool, typer.Option(False, "--csv", help="The same as --format csv.")),
        "output": (Path, typer.Option(None, "-o", "--output", help="Write to this file.")),
    }

    @functools.wraps(fn)
    def wrapper(*args, fmt: str, as_json: bool, as_csv: bool, output: Path | None, **kwargs):
        from actdb import render

        if as_json + as_csv + (fmt != "table") > 1:
            raise UsageError("choose one of --format, --json and --csv")
        fmt = "json" if as_json else "csv" if as_csv else fmt
        if fmt not in render.FORMATS:
            raise UsageError(f"--format must be one of {', '.join(render.FORMATS)}")
        if fmt == "parquet" and output is None:
            raise UsageError("--format parquet needs -o FILE")
        return fn(*args, out=Output(fmt, output), **kwargs)

    own = [p for p in inspect.signature(fn).parameters.values() if p.name != "out"]
    wrapper.__signature__ = inspect.Signature([*own, *(
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=o, annotation=t)
        for n, (t, o) in extra.items())])
    hints = typing.get_type_hints(fn)
    hints.pop("out", None)
    wrapper.__annotations__ = {**hints, **{n: t for n, (t, _) in extra.items()}}
    return wrapper


def _db(store: Path | None):
    import actdb

    return actdb.open(store)


def _echo_json(obj) -> None:
    from actdb import render

    typer.echo(render.to_json(obj))


def _echo_table(rows: list[dict], columns: list[str], title: str | None = None) -> None:
    from actdb import render

    typer.echo(render.table(rows, columns, title), nl=False)


def _note(message: str) -> None:
    typer.echo(f"note: {message}", err=True)


def _rebound(queries) -> None:
    for q in queries:
        if q.rebound:
            _note(f"the query name {q.name!r} now refers to {q.source}; it referred to other "
                  "content before (use --name to keep both)")


def _bar(enabled: bool, name: str, unit: str = "img/s"):
    from actdb import render

    return render.progress_bar(enabled and sys.stderr.isatty(), name, unit)


def _stages():
    from actdb import render

    return render.spinner(sys.stderr.isatty())


def _version(value: bool) -> None:
    if value:
        import actdb

        typer.echo(f"actdb {actdb.__version__}")
        raise typer.Exit()


BACKENDS = ("tensorflow", "jax", "torch")


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Show the version and exit."),
          backend: str = typer.Option(None, "--backend", help="Keras backend for the models: "
                                      "tensorflow (default), jax or torch (sets KERAS_BACKEND; "
                                      "vectors agree across backends).")):
    """actdb: an activation database for studying what CNNs have learned."""
    import os

    if backend is not None:
        if backend not in BACKENDS:
            _fail(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}", 2)
        if "keras" in sys.modules:
            _fail("--backend must be chosen before Keras is imported", 2)
        os.environ["KERAS_BACKEND"] = backend


# -- building a store ------------------------------------------------------------------------


@command()
def ingest(
    ctx: typer.Context,
    root: Path = typer.Argument(..., help="Dataset root (ImageNet train/val, Kaggle CLS-LOC, "
                                "flat val, or any class-per-folder tree), or imagenette, "
                                "imagenette-160, imagenette-320 (downloaded, verified)."),
    store: Path = StoreOpt,
    model: str = typer.Option(None, help="vgg19 (default), vgg16 or resnet50. Every recipe "
                              "option defaults to the store's when it exists.",
                              show_default=False),
    layer: str = typer.Option(None, help="Layer to read (default: vgg19 block5_conv4, vgg16 "
                              "block5_conv3, resnet50 conv5_block3_out)."),
    pool: str = typer.Option(None, help="mean (default: the original study's) or max over "
                             "positions.", show_default=False),
    weights: str = typer.Option(None, help="imagenet (default) | PATH to a Keras weights file "
                                "| random:SEED.", show_default=False),
    image_size: int = typer.Option(None, help="Square input size in pixels (default 224).",
                                   show_default=False),
    resize: str = typer.Option(None, help="squash (default: whole image to size x size, "
                               "bilinear) or center-crop. Query images get the same.",
                               show_default=False),
    per_class: int = typer.Option(None, help="Seeded random sample of N images per class "
                                  "(across the splits selected: both, or --split's)."),
    limit: int = typer.Option(None, help="Seeded random sample of N images overall."),
    seed: int = typer.Option(0, help="Seed for --per-class and --limit."),
    split: str = typer.Option(None, help="Only this split: train or val (default both)."),
    batch_size: int = typer.Option(None, help="Images per forward pass (default: 32 on a CPU, "
                                   "256 on a GPU)."),
    precision: str = typer.Option(None, help="auto (default) | fp32 | bf16 (auto: bf16 "
                                  "where the hardware has it; see README).",
                                  show_default=False),
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
    as_json: bool = JsonOpt,
):
    """Embed the images under ROOT into the store (resumes and skips what is there), then
    update its index and statistics.

    Example: actdb ingest imagenet/ --per-class 100 --seed 0
    """
    ray_only = RAY_OPTIONS if engine != "ray" else ()  # $RAY_ADDRESS alone picks no engine
    options = {k: v for k, v in ctx.params.items()
               if k not in ("root", "store", "as_json", *ray_only)}  # the rest, by name
    if engine == "ray":
        _quiet_ray()
    with _bar(not as_json, "ingest") as bar:
        result = _db(store).ingest(root, progress=bar, **options)
    _unreached(result.index)
    if as_json:
        _echo_json(result.to_dict())
        return
    notes = f" ({'; '.join(result.layout_notes)})" if result.layout_notes else ""
    typer.echo(f"layout: {result.layout}{notes}")
    for path, reason in result.failures[:20]:
        typer.echo(f"  failed: {path}: {reason}")
    if len(result.failures) > 20:
        typer.echo(f"  ... and {len(result.failures) - 20} more (see the failures table)")
    typer.echo(f"ingested {result.ingested}, skipped {result.skipped} already present, "
               f"failed {result.failed} in {result.seconds:.1f}s "
               f"({result.images_per_s:.1f} img/s, {result.precision}) -> {result.store}")
    if result.index:
        typer.echo(f"index: {result.index['kind']} ({result.index['metric']}), "
                   f"{result.index['ntotal']} vectors")


RAY_OPTIONS = ("ray_address", "actors", "actor_cpus", "actor_gpus")


def _quiet_ray() -> None:
    """Ray Data logs each run at INFO on stderr; the command shows its own progress."""
    import logging

    with contextlib.suppress(ImportError):
        import ray.data  # noqa: F401 - configures Ray's loggers, which are then quieted

        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)


@command()
def info(store: Path = StoreOpt, as_json: bool = JsonOpt):
    """What is in the store: model, layer, counts, failures, size, index, statistics.

    Example: actdb info --store actdb-store --json
    """
    d = _db(store).info()
    if as_json:
        _echo_json(d)
    else:
        lines = [
            ("store", d["store"]),
            ("model", f"{d['model']} / {d['layer']} / {d['pool']}-pooled, dim {d['dim']}"),
            ("input", f"{d['image_size']}px, resize {d['resize']}, precision "
                      f"{d['precision']}"),
            ("weights", f"{d['weights']} (sha256 {d['weights_sha256'][:16]}…)"),
            ("images", f"{d['images']} ("
                       + (", ".join(f"{k} {v}" for k, v in d["images_per_split"].items())
                          or "none") + f") in {d['classes']} classes"),
            ("roots", "; ".join(f"{r} ({n})" for r, n in d["roots"].items()) or "none"),
            ("failures", str(d["failures"]) + (f"; {d['repairs']} awaiting re-ingest after a "
                                               "repair" if d["repairs"] else "")),
            ("size", f"{d['size_bytes'] / 1e6:.1f} MB in {d['shards']} shards, "
                     f"{d['runs']} runs"),
        ]
        ix = d["index"]
        lines.append(("index", f"{ix['kind']} ({ix['metric']}), {ix['ntotal']} vectors, "
                               f"recall@50 {ix.get('recall_at_50')}" if ix
                      else "none (run `actdb index`)"))
        st = d["stats"]
        lines.append(("stats", f"seed {st['seed']}, {st['pairs_per_class']} pairs per class, "
                               f"{st['pair_sample']} random pairs" if st
                      else "not computed (run `actdb stats`)"))
        for k, v in lines:
            typer.echo(f"{k:<10} {v}")
    if d["damaged"]:
        _fail(f"store damaged: {'; '.join(d['damaged'])}; run `actdb check --repair`", 1)


@command()
def check(store: Path = StoreOpt,
          repair: bool = typer.Option(False, "--repair", help="Rebuild what can be rebuilt "
                                      "(index, statistics); drop lost shards so the next "
                                      "ingest embeds their images again."),
          as_json: bool = JsonOpt):
    """Verify the manifest, catalog, shards, index and statistics agree; exit 1 when not.

    Example: actdb check --store actdb-store --repair
    """
    rep = _db(store).check(repair=repair)
    if as_json:
        _echo_json(rep.to_dict())
    else:
        for r in rep.repaired:
            typer.echo(f"repaired: {r}")
        for p in rep.problems:
            typer.echo(f"problem: {p}")
        for n in rep.notes:
            typer.echo(f"note: {n}")
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
    """Combine stores ingested with --shard K/N (or any identical manifests) into OUT, then
    index it and compute its statistics.

    Example: actdb merge all-store s1 s2 s3
    """
    import actdb

    res = actdb.merge(out, stores)
    if as_json:
        _echo_json(res.to_dict())
    else:
        typer.echo(f"merged {len(res.sources)} stores into {res.out}: added {res.added}, "
                   f"skipped {res.skipped} already present, {res.renumbered} given new ids, "
                   f"{res.failures} failures recorded")


@command("index")
def index_cmd(
    store: Path = StoreOpt,
    kind: str = typer.Option("auto", help="auto (exact up to ~100k images, else ivfpq) | flat "
                             "| ivfpq | ivf | hnsw."),
    metric: str = typer.Option("l2", help="l2 (the original study's) or cosine."),
    target_recall: float = typer.Option(0.95, help="Recall@50 the approximate kinds must reach."),
    as_json: bool = JsonOpt,
):
    """(Re)build the FAISS index of the store.

    Example: actdb index --kind hnsw --metric cosine
    """
    info_ = _db(store).index(kind=kind, metric=metric, target_recall=target_recall)
    _unreached(info_)
    if as_json:
        _echo_json(info_)
    else:
        typer.echo(f"built {info_['kind']} index ({info_['metric']}) over {info_['ntotal']} "
                   f"vectors in {info_['build_seconds']}s, recall@50 {info_['recall_at_50']}")


def _unreached(info: dict | None) -> None:
    """Say on stderr which recall levels no setting of the index reached."""
    if info and info.get("unreached_recall"):
        levels = ", ".join(str(r) for r in info["unreached_recall"])
        _note(f"no setting of this {info['kind']} index reaches recall@50 {levels}; the best "
              f"measured, {info['recall_at_50']}, answers for it (try --kind flat or hnsw)")


@command()
@output_options
def stats(
    store: Path = StoreOpt,
    seed: int = typer.Option(None, help="Seed of the pair samples (default: as recorded, "
                             "else 0)."),
    pairs_per_class: int = typer.Option(None, help="Same- and different-class pairs per "
                                        "class, every pair when fewer exist (default: as "
                                        "recorded, else 500)."),
    pair_sample: int = typer.Option(None, help="Random pairs for the random-pair row "
                                    "(default: as recorded, else 100000)."),
    out: Output = None,
):
    """(Re)compute centroids, class_stats and pair_stats. Ingest does this too, with the
    settings recorded here.

    Example: actdb stats --seed 1 && actdb sql "SELECT * FROM pair_stats"
    """
    res = _db(store).stats(seed=seed, pairs_per_class=pairs_per_class,
                           pair_sample=pair_sample)
    cols = ["kind", "count", "sampled", "mean", "std", "p05", "p50", "p95"]
    if not out.table:
        return out.rows(res["pair_stats"], cols, whole=res)
    _echo_table(res["pair_stats"], cols,
                title=f"{res['images']} images, {res['classes']} classes ({res['seconds']}s)")


# -- questions -------------------------------------------------------------------------------


def _context_line(c: dict) -> str:
    if c["nn_distance"] is None:
        return "no neighbours"
    line = f"nearest-neighbour distance {c['nn_distance']:.4g}"
    if c.get("filtered"):
        line += " among all stored images"
    if c.get("nn_percentile") is not None:
        line += (f", farther than {c['nn_percentile']:.1f}% of stored images' nearest "
                 f"neighbours (their median {c['store_median_nn_distance']:.4g})")
    if c.get("filtered"):
        nearest_kept = c["filtered_nn_distance"]
        line += ("; nearest of the filtered images "
                 + ("none" if nearest_kept is None else f"{nearest_kept:.4g}"))
    if c.get("store_median_random_pair") is not None:
        line += f"; median random-pair distance {c['store_median_random_pair']:.4g}"
    return line


@command()
@output_options
def nearest(
    queries: list[str] = QueriesArg,
    k: int = typer.Option(10, "-k", "--k", help="Number of neighbours."),
    classes: str = ClassesOpt,
    split: str = typer.Option(None, help="Only this split."),
    where: str = typer.Option(None, help="Only images matching this SQL predicate on `images`."),
    include_self: bool = typer.Option(False, "--include-self", help="Keep an id: query's own "
                                      "image among its neighbours (left out by default)."),
    recall: float = typer.Option(None, help="With an approximate index: the recall@50 to "
                                 "reach, e.g. 0.99 (the cheapest setting measured to reach "
                                 "it; default: the index's target, 0.95)."),
    name: list[str] = typer.Option(None, help="Name to cache the query under (default: file "
                                   "stem); repeat for several queries."),
    store: Path = StoreOpt,
    out: Output = None,
):
    """Which stored images and classes does each query land near, and how far is it?

    Example: actdb nearest node4.png -k 50 --classes sea_cucumber,groenendael
    """
    res = _db(store).nearest(queries, k=k, classes=classes, split=split, where=where,
                             names=name, include_self=include_self, recall=recall)
    _rebound(a.query for a in res.answers)
    d = res.to_dict()
    if not out.table:
        cols = ["query", "rank", "distance", "image_id", "class_name", "synset", "split",
                "path", "root", "nn_distance", "nn_percentile", "mean_distance_k"]
        return out.rows([{"query": q["query"], **n, **q["context"]} for q in d["queries"]
                         for n in q["neighbors"]], cols, whole=d)
    for q in d["queries"]:
        if not q["neighbors"]:
            typer.echo(f"{q['query']}: no images match")
            continue
        _echo_table(q["neighbors"], ["rank", "distance", "class_name", "synset", "path"],
                    title=f"{q['query']}: {len(q['neighbors'])} nearest ({d['metric']})")
        _echo_table([{**c, "share": f"{c['share']:.0%}"} for c in q["classes"]],
                    ["class_name", "synset", "count", "share"], title="class vote")
        typer.echo(_context_line(q["context"]))


@command("centroids")
@output_options
def centroids_cmd(
    queries: list[str] = QueriesArg,
    k: int = typer.Option(10, "-k", "--k", help="Number of classes."),
    classes: str = ClassesOpt,
    store: Path = StoreOpt,
    out: Output = None,
):
    """Rank classes by the distance from the query to each class centroid.

    Example: actdb centroids node4.png -k 10
    """
    from actdb import render

    rows = render.records(_db(store).centroids(queries, k=k, classes=classes))
    cols = ["rank", "distance", "class_name", "synset", "n", "class_mean_dist",
            "class_p95_dist", "inside"]
    if not out.table:
        return out.rows(rows, ["query", *cols])
    for q in dict.fromkeys(r["query"] for r in rows):
        _echo_table([r for r in rows if r["query"] == q], cols,
                    title=f"{q}: nearest class centroids")


def _sql_text(query: str) -> str:
    """The statement: as given, ``-`` for standard input, ``@FILE`` for a file."""
    if query == "-":
        return sys.stdin.read()
    if query.startswith("@"):
        return Path(query[1:]).read_text()
    return query


@command()
@output_options
def sql(
    query: str = typer.Argument(..., help="One SQL statement over the store's views; - reads "
                                "it from standard input, @FILE from a file."),
    store: Path = StoreOpt,
    out: Output = None,
):
    """Read-only DuckDB SQL over images, activations, classes, centroids, class_stats,
    pair_stats, nn_sample, queries, failures, runs, repairs.

    Example: actdb sql "SELECT class_name, mean_dist FROM class_stats ORDER BY mean_dist LIMIT 5"
    """
    table = _db(store).sql(_sql_text(query))
    out.rows(table.to_pylist(), table.column_names)


@command("examples")
@output_options
def examples_cmd(
    channel: int = typer.Option(..., "--channel", "-c", help="Channel index (0-based)."),
    k: int = typer.Option(20, "-k", "--k", help="Number of images."),
    store: Path = StoreOpt,
    out: Output = None,
):
    """The stored images that excite one channel most (as OpenAI Microscope shows them).

    Example: actdb examples --channel 4 -k 20
    """
    from actdb import render

    res = _db(store).examples(channel, k)
    cols = ["rank", "value", "class_name", "synset", "path"]
    if not out.table:
        return out.rows(render.records(res.top), cols, whole=res.to_dict())
    _echo_table(render.records(res.top), cols,
                title=f"channel {channel}: top {len(res.top)} of the store "
                      f"(mean {res.channel_mean:.4g}, max {res.channel_max:.4g})")
    _echo_table([{**r, "share": f"{r['share']:.0%}"} for r in render.records(res.classes)],
                ["class_name", "synset", "count", "share"], title="classes among them")
    if not res.queries.empty:
        _echo_table(render.records(res.queries), ["name", "value", "percentile"],
                    title="named queries")


# -- models ----------------------------------------------------------------------------------


@command()
def dream(
    output: Path = typer.Option(..., "-o", "--output", help="Image to write (its name says "
                                "the format: .png, .jpg, ...), plus a .json sidecar with every "
                                "parameter and the objective per step."),
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

    Runs on the TensorFlow backend of Keras.

    Example: actdb dream --channel 4 --recipe seed --steps 100 --step-size 0.1 -o node4.png
    """
    import actdb

    options = dict(model=model, layer=layer, channel=channel, weights=weights, size=size,
                   steps=steps, step_size=step_size, seed=seed, recipe=recipe,
                   objective=objective)
    with _bar(not as_json, "dream", "steps/s") as bar:
        show = (lambda step, total, value: bar(step, total, f"objective {value:.4g}")) \
            if bar else None
        res = actdb.dream(output, progress=show, **options)
    if as_json:
        _echo_json(res.to_dict())
    else:
        typer.echo(f"wrote {res.image} and {res.sidecar}: objective {res.start_activation:.4g} "
                   f"at the start, {res.final_activation:.4g} on the saved image")


@command()
@output_options
def predict(
    images: list[Path] = typer.Argument(..., help="Image files."),
    models: str = typer.Option("vgg19,vgg16,resnet50", help="Comma-separated models."),
    top: int = typer.Option(3, help="Classes per model."),
    weights: list[str] = typer.Option(None, help="imagenet | PATH | random:SEED for all "
                                      "models, or MODEL=SOURCE per model; repeatable."),
    out: Output = None,
):
    """What do full ImageNet classifiers call these images? (offline class names)

    Example: actdb predict node4.png --models vgg19,vgg16,resnet50 --top 3
    """
    import actdb
    from actdb.models.predict import parse_weights_options

    names = [m.strip().lower() for m in models.split(",") if m.strip()]
    default, per_model = parse_weights_options(weights)
    res = actdb.predict(images, models=names,
                        weights={**dict.fromkeys(names, default), **per_model}, top=top)
    rows = [{"image": r["image"], "model": r["model"], "rank": i + 1, **t}
            for r in res for i, t in enumerate(r["top"])]
    cols = ["image", "model", "rank", "class_name", "wnid", "probability"]
    if not out.table:
        return out.rows(rows, cols, whole=res)
    _echo_table(rows, cols)


@command()
def embed(
    images: list[Path] = typer.Argument(..., help="Image files."),
    output: Path = typer.Option(..., "-o", "--output", help="FILE.npy or FILE.parquet."),
    store: Path = typer.Option(None, "--store", help="Embed exactly as this store's images "
                               "(the default when no --model is given).", show_default=False),
    model: str = typer.Option(None, help="Embed with this recipe instead of a store's."),
    layer: str = typer.Option(None, help="With --model: the layer (default: the model's)."),
    pool: str = typer.Option("mean", help="With --model: mean or max."),
    weights: str = typer.Option("imagenet", help="With --model: imagenet | PATH | "
                                "random:SEED."),
    image_size: int = typer.Option(224, help="With --model: input size in pixels."),
    resize: str = typer.Option("squash", help="With --model: squash or center-crop."),
    precision: str = typer.Option("auto", help="With --model: auto | fp32 | bf16."),
):
    """Write the pooled vector(s) of images, as `nearest` computes them, to .npy or Parquet.

    Example: actdb embed node4.png -o node4.npy && actdb nearest node4.npy -k 50
    """
    import actdb
    from actdb import render

    if output.suffix.lower() not in (".npy", ".parquet"):
        raise UsageError(f"cannot write {output.suffix or 'a file without extension'}: use "
                         "-o FILE.npy or FILE.parquet")
    if model is None:
        vecs = _db(store).embed(images)
    else:
        vecs = actdb.embed(images, model=model, layer=layer, pool=pool, weights=weights,
                           image_size=image_size, resize=resize, precision=precision)
    render.write_vectors(output, [p.stem for p in images], vecs)
    typer.echo(f"wrote {len(images)} vector(s) of dim {vecs.shape[1]} to {output}")


# -- pictures --------------------------------------------------------------------------------

plot_app = typer.Typer(help="Plots with the query highlighted: tsne, umap, pca, profile, "
                       "distances.\n\nExample: actdb plot umap --query node4.png "
                       "--classes sea_cucumber,groenendael --random-classes 10 -o umap.png",
                       no_args_is_help=True, rich_markup_mode=None)
app.add_typer(plot_app, name="plot")

RandomOpt = typer.Option(0, "--random-classes", help="Also show N random other classes.")
OutOpt = typer.Option(..., "-o", "--output", help="Figure file: .png, .svg or .pdf.")
SeedOpt = typer.Option(0, help="Seed of the sample and the projection.")


def _plot(kind: str, queries, output: Path, store, **options) -> None:
    with _stages() as stage:
        _db(store).plot(kind, queries or [], output, progress=stage, **options)
    typer.echo(f"wrote {output}")


def _add_map_command(method: str, label: str) -> None:
    def cmd(
        query: list[str] = typer.Option(None, "--query", help="Query image/id:/npy to "
                                        "highlight; repeatable."),
        classes: str = typer.Option(None, help="Classes to show (comma-separated; default: "
                                    "all when no --random-classes)."),
        random_classes: int = RandomOpt,
        per_class: int = typer.Option(100, help="Images per class (seeded sample)."),
        seed: int = SeedOpt,
        output: Path = OutOpt,
        save_coords: Path = typer.Option(None, help="Save coordinates, sample ids and "
                                         "parameters to this .parquet."),
        store: Path = StoreOpt,
    ):
        _plot(method, query, output, store, classes=classes, random_classes=random_classes,
              per_class=per_class, seed=seed, save_coords=save_coords)

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
    classes: str = typer.Option(None, help="Classes whose mean profile to overlay "
                                "(comma-separated)."),
    output: Path = OutOpt,
    store: Path = StoreOpt,
):
    """The query's channel values, overlaid with each named class's mean profile.

    Example: actdb plot profile node4.png --classes sea_cucumber,groenendael -o profile.png
    """
    _plot("profile", queries, output, store, classes=classes)


@plot_app.command("distances")
@handle_errors
def plot_distances(
    queries: list[str] = QueriesArg,
    classes: str = typer.Option(None, help="Classes to compare (comma-separated)."),
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
    _plot("distances", queries, output, store, classes=classes,
          random_classes=random_classes, seed=seed, log=log, bins=bins)


@command()
def report(
    queries: list[str] = QueriesArg,
    output: Path = typer.Option("report.html", "-o", "--output", help="HTML file to write."),
    k: int = typer.Option(12, "-k", "--k", help="Neighbours shown per query."),
    classes: str = typer.Option(None, help="Classes in the maps and histograms "
                                "(comma-separated)."),
    random_classes: int = RandomOpt,
    per_class: int = typer.Option(100, help="Images per class in the maps."),
    seed: int = SeedOpt,
    store: Path = StoreOpt,
):
    """One self-contained HTML report: query, neighbours, class vote, centroids, t-SNE and
    UMAP maps, distance histograms (images embedded; opens offline).

    Example: actdb report node4.png -o report.html
    """
    with _stages() as stage:
        path = _db(store).report(output, queries, k=k, classes=classes,
                                 random_classes=random_classes, per_class=per_class,
                                 seed=seed, progress=stage)
    typer.echo(f"wrote {path}")


@command("map")
@output_options
def map_cmd(
    method: str = typer.Option("umap", help="umap, tsne (openTSNE) or pca."),
    per_class: int = typer.Option(None, help="Images per class (seeded sample; default: every "
                                  "class, at most 50,000 points)."),
    classes: str = typer.Option(None, help="Only these classes (comma-separated)."),
    random_classes: int = RandomOpt,
    seed: int = SeedOpt,
    list_maps: bool = typer.Option(False, "--list", help="List the stored maps instead."),
    store: Path = StoreOpt,
    out: Output = None,
):
    """Make a 2-D map of the store once and keep it: the page, plots, reports and exports
    reuse it, and new queries are placed into it in milliseconds. An up-to-date map of the
    same settings is reused; one made before the store changed is made again.

    Example: actdb map --method umap --per-class 50
    """
    from actdb import render

    db = _db(store)
    if list_maps:
        df = db.maps().drop(columns=["settings"])
        rows = render.records(df)
        return _echo_table(rows, list(df.columns), "maps") if out.table else out.rows(
            rows, list(df.columns))
    with _stages() as stage:
        m = db.map(method, per_class=per_class, classes=classes,
                   random_classes=random_classes, seed=seed, progress=stage)
    if not out.table:
        d = render.plain(m.describe())
        return out.rows([d], list(d), whole=d)
    how = f"made in {m.seconds:.1f} s" if m.made else f"up to date, made {m.created_at}"
    typer.echo(f"map {m.map_id}: {len(m.points)} points by {m.method}, {how}")


@command("atlas")
def atlas_cmd(
    channels: str = typer.Option(None, help="Channels: 0-511, 4,17,30-40 (default: all)."),
    recipe: str = typer.Option("improved", help="improved or seed (as actdb dream)."),
    steps: int = typer.Option(None, help="Optimisation steps (default: the recipe's)."),
    size: int = typer.Option(224, help="Picture size in pixels."),
    batch: int = typer.Option(8, help="Channels optimised at once, as one batch."),
    models: str = typer.Option("vgg19,vgg16,resnet50", help="Classifiers asked what each "
                               "picture is (comma-separated)."),
    k: int = typer.Option(12, "-k", "--k", help="Nearest stored images per picture."),
    examples: int = typer.Option(12, help="Top and bottom stored images per channel."),
    seed: int = typer.Option(0, help="Seed of the pictures."),
    variants: bool = typer.Option(False, "--variants", help="Also a picture with the neuron "
                                  "objective and one from the next seed (stability)."),
    precision: str = typer.Option("auto", help="fp32, bf16 or auto (bf16 where the CPU or "
                                  "GPU has it)."),
    heatmaps: bool = typer.Option(True, "--heatmaps/--no-heatmaps", help="Where in the top "
                                  "images each channel fires (runs the model on them)."),
    output: Path = typer.Option(None, "-o", "--output", help="Folder for the static site "
                                "(default: the store's atlas/site, what actdb serve shows)."),
    store: Path = StoreOpt,
    as_json: bool = JsonOpt,
):
    """The study's question asked of every channel of the store's layer: each channel's
    feature visualisation, what the networks call it, where it lands among the stored images,
    what excites it in the data, and whether these agree; in the channels table (SQL) and a
    static site. A stopped run continues where it stopped. Runs on the TensorFlow backend of
    Keras (the pictures are made as actdb dream makes them).

    Example: actdb atlas --channels 4 --models vgg19,vgg16,resnet50 (the study's channel),
    then: actdb sql "SELECT channel, predicted_vgg19, nearest_centroid_class FROM channels
    WHERE agree_all"
    """
    from actdb import render

    names = tuple(m.strip() for m in models.split(",") if m.strip())
    with _bar(True, "channels", "ch/s") as update:
        last = {"done": 0, "total": None}

        def progress(done, total):
            last.update(done=done, total=total)
            if update:
                update(done, total)

        def stage(text):
            if update:
                update(last["done"], last["total"], text)

        r = _db(store).atlas(channels, recipe=recipe, steps=steps, size=size, batch=batch,
                             models=names, k=k, examples=examples, seed=seed,
                             variants=variants, precision=precision, heatmaps=heatmaps,
                             output=output, progress=progress, stage=stage)
    if as_json:
        return _echo_json(render.plain(r.to_dict()))
    typer.echo(f"atlas: {r.made} pictures made, {r.skipped} already there, "
               f"{len(r.channels)} channels in {r.seconds:.0f} s; site {r.site}")


@command("export")
def export_cmd(
    output: Path = typer.Argument(..., help="A folder (projector) or a .parquet file (atlas, "
                                  "parquet)."),
    to: str = typer.Option(..., "--to", help="projector (TensorBoard Projector), atlas (Apple's "
                           "Embedding Atlas) or parquet (vectors and metadata joined)."),
    classes: str = typer.Option(None, help="Only these classes (comma-separated)."),
    per_class: int = typer.Option(None, help="At most N images a class (seeded sample)."),
    where: str = typer.Option(None, help="SQL predicate over images, e.g. \"split = 'val'\" or "
                              "a map selection's image_id IN (...)."),
    seed: int = SeedOpt,
    query: list[str] = typer.Option(None, "--query", help="atlas: a query image/id:/npy to add "
                                    "as a row placed in the map; repeatable."),
    method: str = typer.Option("umap", help="atlas: the map's projection (umap, tsne, pca)."),
    base_url: str = typer.Option(None, help="projector: the URL the folder will be served "
                                 "from, written into projector_config.json."),
    store: Path = StoreOpt,
):
    """Write the store for the tools people already use: TensorBoard Projector (a stratified
    sample of at most 100,000 points with a sprite of thumbnails), Apple's Embedding Atlas
    (map coordinates, class, path and thumbnails in one Parquet), or a plain Parquet of
    vectors and metadata.

    Example: actdb export --to atlas atlas.parquet --query node4.png, then
    embedding-atlas atlas.parquet --x x --y y --image thumbnail
    """
    with _stages() as stage:
        r = _db(store).export(to, output, classes=classes, per_class=per_class, where=where,
                              seed=seed, queries=query or [], method=method,
                              base_url=base_url, progress=stage)
    typer.echo(f"wrote {r.rows} rows to {r.path} ({', '.join(r.files)})")
    if r.note:
        _note(r.note)
    if to == "atlas":
        typer.echo(f"open it with: embedding-atlas {r.path} --x x --y y --image thumbnail")
    elif to == "projector":
        config = f"{base_url.rstrip('/')}/projector_config.json" if base_url else None
        typer.echo(f"open it with: tensorboard --logdir {r.path} (pip install tensorboard), "
                   + (f"or https://projector.tensorflow.org/?config={config}" if config else
                      "or serve the folder and export again with --base-url for "
                      "projector.tensorflow.org"))


@command("serve")
def serve_cmd(
    store: Path = StoreOpt,
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, help="Port."),
    token: str = typer.Option(None, envvar="ACTDB_TOKEN", help="Require this token on every "
                              "API call (Authorization: Bearer TOKEN); the page asks for it."),
    max_upload_mb: float = typer.Option(8.0, help="Largest accepted upload, in MB."),
    map_method: str = typer.Option("umap", "--map", help="The page's map: umap, tsne or pca, "
                                   "made in the background when missing or stale; none: no "
                                   "map."),
):
    """HTTP API and web page over a store, with the model kept warm.

    Example: actdb serve --store actdb-store --port 8000, then open http://127.0.0.1:8000/
    """
    from actdb.serve.app import ServeConfig, serve

    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        _note(f"binding {host} without --token: anyone who can reach this port can query "
              "the store")
    if map_method not in ("umap", "tsne", "pca", "none"):
        raise UsageError(f"--map {map_method}: use umap, tsne, pca or none")
    serve(ServeConfig(store=store, token=token, map_method=None if map_method == "none"
                      else map_method, max_upload_bytes=int(max_upload_mb * 1024 * 1024)),
          host, port)


def main() -> None:
    """The ``actdb`` command: owns its process, so it may quiet third-party noise."""
    import os
    import warnings

    # TensorFlow's info and warning logs while it runs (its import's: actdb.heavy); errors show
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # share a GPU politely
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX: no 75% grab
    warnings.filterwarnings("ignore", module=r"(umap|sklearn|numba|keras|PIL|ray)(\.|$)")
    # Ray's C++ logs on stderr: at "error", Ray Data's own actor pools log a false alarm about
    # constructor arguments (ray-project/ray#57733); real failures reach us as exceptions.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if "keras" in sys.modules:
        # Everything is written and committed; tearing TensorFlow's modules down would add
        # over a second to every command that ran a model (measured: 1.3 s).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
