"""Commands that ask the store: nearest, centroids, sql, examples."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from actdb.cli.app import (
    ClassesOpt,
    Output,
    QueriesArg,
    RuntimeOpt,
    SpaceOpt,
    StoreOpt,
    command,
    echo_table,
    note_rebound,
    open_space,
    open_store,
    output_options,
)


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
    space: str = typer.Option(None, "--space", help="The space to search: MODEL/LAYER, a "
                              "unique short form such as block4_conv4, or all (one row per "
                              "space: class vote, nearest centroid, distance in context).",
                              show_default=False),
    runtime: str = RuntimeOpt,
    store: Path = StoreOpt,
    out: Output = None,
):
    """Which stored images and classes does each query land near, and how far is it?

    Example: actdb nearest node4.png -k 50 --classes sea_cucumber,groenendael
    """
    if space == "all":
        rows = open_store(store, runtime).across_spaces(
            queries, k=k, classes=classes, split=split, where=where, names=name,
            include_self=include_self, recall=recall)
        return _across(rows, f"in every space ({k} nearest)", out)
    res = open_space(store, space, runtime).nearest(queries, k=k, classes=classes, split=split,
                                                    where=where, names=name,
                                                    include_self=include_self, recall=recall)
    from actdb import render

    note_rebound(a.query for a in res.answers)
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
        echo_table(q["neighbors"], ["rank", "distance", "image_id", "class_name", "synset",
                                    "path"],
                   title=f"{q['query']}: {len(q['neighbors'])} nearest ({d['metric']})")
        echo_table([{**c, "share": f"{c['share']:.0%}"} for c in q["classes"]],
                   ["class_name", "synset", "count", "share"], title="class vote")
        typer.echo(render.context_line(q["context"]))


@command("centroids")
@output_options
def centroids_cmd(
    queries: list[str] = QueriesArg,
    k: int = typer.Option(10, "-k", "--k", help="Number of classes."),
    classes: str = ClassesOpt,
    space: str = typer.Option(None, "--space", help="The space: MODEL/LAYER, a unique short "
                              "form, or all (one row per space, as nearest --space all).",
                              show_default=False),
    runtime: str = RuntimeOpt,
    store: Path = StoreOpt,
    out: Output = None,
):
    """Rank classes by the distance from the query to each class centroid.

    Example: actdb centroids node4.png -k 10
    """
    from actdb import render

    cols = ["rank", "distance", "class_name", "synset", "n", "class_mean_dist",
            "class_p95_dist", "inside"]
    if space == "all":
        got = open_store(store, runtime).centroids_across_spaces(queries, k=k,
                                                                 classes=classes)
        return _across(got, "nearest class centroids in every space", out,
                       ["space", *cols])
    rows = render.records(open_space(store, space, runtime).centroids(queries, k=k,
                                                                      classes=classes))
    if not out.table:
        return out.rows(rows, ["query", *cols])
    for q in dict.fromkeys(r["query"] for r in rows):
        echo_table([r for r in rows if r["query"] == q], cols,
                   title=f"{q}: nearest class centroids")


def _across(frame, title: str, out: Output, columns: list[str] | None = None) -> None:
    """Rows of every space (``across_spaces`` or ``centroids_across_spaces``), a table for
    each query."""
    from actdb import render
    from actdb.query.across import COLUMNS

    rows, columns = render.records(frame), columns or COLUMNS[1:]
    if not out.table:
        return out.rows(rows, ["query", *columns])
    for q in dict.fromkeys(r["query"] for r in rows):
        echo_table([{**r, "vote_share": f"{r['vote_share']:.0%}"} if "vote_share" in r else r
                    for r in rows if r["query"] == q], columns, title=f"{q}: {title}")


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
    out.arrow(open_store(store).sql(_sql_text(query)))


@command("examples")
@output_options
def examples_cmd(
    channel: int = typer.Option(..., "--channel", "-c", help="Channel index (0-based)."),
    k: int = typer.Option(20, "-k", "--k", help="Number of images."),
    space: str = SpaceOpt,
    store: Path = StoreOpt,
    out: Output = None,
):
    """The stored images that excite one channel most (as OpenAI Microscope shows them).

    Example: actdb examples --channel 4 -k 20
    """
    from actdb import render

    res = open_space(store, space).examples(channel, k)
    cols = ["rank", "value", "class_name", "synset", "path"]
    if not out.table:
        return out.rows(render.records(res.top), cols, whole=res.to_dict())
    echo_table(render.records(res.top), cols,
               title=f"channel {channel}: top {len(res.top)} of the store "
                     f"(mean {res.channel_mean:.4g}, max {res.channel_max:.4g})")
    echo_table([{**r, "share": f"{r['share']:.0%}"} for r in render.records(res.classes)],
               ["class_name", "synset", "count", "share"], title="classes among them")
    if not res.queries.empty:
        echo_table(render.records(res.queries), ["name", "value", "percentile"],
                   title="named queries")
