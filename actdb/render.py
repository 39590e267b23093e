r"""How the command line shows results: tables, JSON, CSV, Parquet, files and progress (no
Typer here).

On a terminal a table is drawn with rich; anywhere else (a pipe, a file) it is tab-separated
with every value in full, so nothing is cut to the terminal's width. JSON keeps every float
at full precision; CSV writes array values as JSON lists, which parse back.

>>> tsv([{"a": 1, "b": [1.5, 2.0]}], ["a", "b"])
'a\tb\n1\t[1.5, 2.0]\n'
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path

import numpy as np


def plain(v):
    """A value as plain JSON-ready Python (numpy scalars and arrays, NaN -> None)."""
    if isinstance(v, np.ndarray):
        return [plain(x) for x in v.tolist()]
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is not None and not isinstance(v, str | int | float | bool):
        try:
            import pandas as pd

            if v is pd.NA or v is pd.NaT:
                return None
        except ImportError:
            pass
        return str(v)
    return v


def to_json(obj) -> str:
    return json.dumps(plain(obj), indent=2)


#: On a terminal an array shows its first and last few values and its length.
SHOWN_VALUES = 6


def _cell(v, floats: str = "{:.4g}", short: bool = False) -> str:
    """A value as table text; ``short``: long arrays abbreviated, for a person to read.

    >>> _cell(np.arange(512) / 7, short=True)
    '[0, 0.1429, 0.2857, …, 72.71, 72.86, 73] (512 values)'
    """
    v = plain(v)
    if isinstance(v, float):
        return floats.format(v)
    if isinstance(v, list):
        if short and len(v) > SHOWN_VALUES:
            half = SHOWN_VALUES // 2
            shown = [_cell(x, floats) for x in (*v[:half], *v[-half:])]
            return f"[{', '.join(shown[:half])}, …, {', '.join(shown[half:])}] ({len(v)} values)"
        return json.dumps(v)
    return "" if v is None else str(v)


def tsv(rows: list[dict], columns: list[str]) -> str:
    """Tab-separated text with a header; values in full (floats as repr)."""
    lines = ["\t".join(columns)]
    for r in rows:
        lines.append("\t".join(_cell(r.get(c), "{!r}").replace("\t", " ").replace("\n", " ")
                               for c in columns))
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict], columns: list[str]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c), "{!r}") for c in columns])
    return buf.getvalue()


def rich_table(rows: list[dict], columns: list[str], title: str | None = None,
               width: int | None = None, short: bool = False) -> str:
    """A rich table as text (wrapped to ``width``, never cut; ``short``: long arrays
    abbreviated)."""
    import io

    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    numeric = {c: all(isinstance(plain(r.get(c)), int | float) for r in rows if
                      r.get(c) is not None) and rows for c in columns}
    for c in columns:
        t.add_column(c, justify="right" if numeric[c] else "left", overflow="fold")
    for r in rows:
        t.add_row(*[_cell(r.get(c), short=short) for c in columns])
    buf = io.StringIO()
    Console(file=buf, width=width, highlight=False, soft_wrap=False,
            force_terminal=False).print(t)
    return buf.getvalue()


def table(rows: list[dict], columns: list[str], title: str | None = None) -> str:
    """What a command prints: a rich table on a terminal (long arrays abbreviated), else TSV
    with every value in full (title as a comment)."""
    if sys.stdout.isatty():
        import shutil

        return rich_table(rows, columns, title, shutil.get_terminal_size().columns, short=True)
    return (f"# {title}\n" if title else "") + tsv(rows, columns)


def info_text(d: dict) -> str:
    """``info``'s answer as aligned lines, for a person."""
    ix, st = d["index"], d["stats"]
    lines = [
        ("store", d["store"]),
        ("model", f"{d['model']} / {d['layer']} / {d['pool']}-pooled, dim {d['dim']}"),
        ("input", f"{d['image_size']}px, resize {d['resize']}, precision {d['precision']}"
                  + (f", preprocess {d['preprocess']}" if d.get("preprocess") else "")),
        ("weights", f"{d['weights']} (sha256 {d['weights_sha256'][:16]}…)"),
        *([("queries", f"image queries embedded by {d['query_route']}")]
          if d.get("query_route") else []),
        ("images", f"{d['images']} ("
                   + (", ".join(f"{k} {v}" for k, v in d["images_per_split"].items())
                      or "none") + f") in {d['classes']} classes"),
        ("roots", "; ".join(f"{r} ({n})" for r, n in d["roots"].items()) or "none"),
        ("failures", str(d["failures"]) + (f"; {d['repairs']} awaiting re-ingest after a "
                                           "repair" if d["repairs"] else "")),
        ("size", f"{d['size_bytes'] / 1e6:.1f} MB in {d['shards']} shards, {d['runs']} runs"),
        ("index", f"{ix['kind']} ({ix['metric']}), {ix['ntotal']} vectors, recall@50 "
                  f"{ix.get('recall_at_50')}" if ix else "none (run `actdb index`)"),
        ("stats", f"seed {st['seed']}, {st['pairs_per_class']} pairs per class, "
                  f"{st['pair_sample']} random pairs" if st
         else "not computed (run `actdb stats`)"),
    ]
    if len(d.get("spaces", [])) > 1:
        lines.append(("spaces", "; ".join(
            f"{s['name']}{' (default)' if s['default'] else ''}: {s['dim']}-d, "
            f"{s['vectors']} vectors" for s in d["spaces"])))
    if any(s["name"] == d.get("space") and not s["default"] for s in d.get("spaces", [])):
        lines.insert(1, ("space", d["space"]))  # info --space of another than the default
    return "".join(f"{k:<10} {v}\n" for k, v in lines)


def context_line(c: dict) -> str:
    """A query's distance context (``nearest``'s) as one sentence."""
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
    if c.get("route"):
        line += f"; embedded by {c['route']}"
    return line


def ingest_text(result) -> str:
    """``ingest``'s summary (an IngestResult): layout, the first failures, counts, index."""
    notes = f" ({'; '.join(result.layout_notes)})" if result.layout_notes else ""
    lines = [f"layout: {result.layout}{notes}"]
    lines += [f"  failed: {f.path}: {f.reason}" for f in result.failures[:20]]
    if len(result.failures) > 20:
        lines.append(f"  ... and {len(result.failures) - 20} more (see the failures table)")
    lines.append(f"ingested {result.ingested}, skipped {result.skipped} already present, "
                 f"failed {result.failed} in {result.seconds:.1f}s "
                 f"({result.images_per_s:.1f} img/s, {result.precision}) -> {result.store}")
    if result.filled:
        into = ", ".join(f"{n} into {space}" for space, n in result.filled.items())
        lines.append(f"embedded images the store holds: {into} in {result.fill_seconds:.1f}s "
                     f"({result.fill_images_per_s:.1f} img/s)")
    if result.index:
        lines.append(f"index: {result.index['kind']} ({result.index['metric']}), "
                     f"{result.index['ntotal']} vectors")
    kept = [space for space, how in (result.onnx or {}).items() if how == "kept"]
    if kept:
        lines.append(f"onnx: kept the model of {', '.join(kept)} for queries")
    return "".join(line + "\n" for line in lines)


def check_text(rep) -> str:
    """``check``'s report (a CheckReport): what was repaired, problems, notes, a summary."""
    lines = [*(f"repaired: {r}" for r in rep.repaired), *(f"problem: {p}" for p in rep.problems),
             *(f"note: {n}" for n in rep.notes)]
    state = "ok" if rep.ok else f"{len(rep.problems)} problem(s)"
    lines.append(f"{state}: {rep.images} images, {rep.vectors} vectors in {rep.shards} shards"
                 + (f", index holds {rep.index_ids}" if rep.index_ids is not None else ""))
    return "".join(line + "\n" for line in lines)


def records(df) -> list[dict]:
    """A DataFrame's rows as plain dicts."""
    return [{k: plain(v) for k, v in r.items()} for r in df.to_dict("records")]


def write_vectors(path: str | Path, names: list[str], vecs: np.ndarray) -> Path:
    """``.npy`` (one row per image, or a single vector for one image) or ``.parquet``
    (name, vec)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        np.save(path, vecs[0] if len(vecs) == 1 else vecs)
    elif path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        col = pa.FixedSizeListArray.from_arrays(pa.array(vecs.astype(np.float32).ravel()),
                                                vecs.shape[1])
        pq.write_table(pa.table({"name": names, "vec": col}), path)
    else:
        from actdb.errors import UsageError

        raise UsageError(f"cannot write {path.suffix or 'a file without extension'}: "
                         "use -o FILE.npy or FILE.parquet")
    return path


#: What a command that prints rows can print them as (``--format``).
FORMATS = ("table", "tsv", "csv", "json", "parquet")


def write_rows(rows: list[dict], columns: list[str], fmt: str, path: Path | None = None,
               whole=None) -> str | None:
    """Rows in one of :data:`FORMATS`: the text to print (None when written to ``path``).
    ``json`` prints ``whole`` when given (a command's full answer), else the rows; a table
    written to a file is drawn at full width; ``parquet`` needs ``path``.

    >>> write_rows([{"a": 1}], ["a"], "csv")
    'a\\n1\\n'
    """
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({c: [plain(r.get(c)) for r in rows] for c in columns}), path)
        return None
    if fmt == "json":
        text = to_json(rows if whole is None else whole) + "\n"
    elif fmt == "csv":
        text = csv_text(rows, columns)
    elif fmt == "tsv":
        text = tsv(rows, columns)
    else:
        text = rich_table(rows, columns, width=10_000) if path is not None else table(rows,
                                                                                      columns)
    if path is None:
        return text
    Path(path).write_text(text)
    return None


@contextlib.contextmanager
def progress_bar(shown: bool, name: str, unit: str = "img/s"):
    """Yield a callback(done, total, description=None) that drives a rich progress bar on
    stderr (rate, ETA), or None when not ``shown``."""
    if not shown:
        yield None
        return
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

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TaskProgressColumn(), Rate(""), TimeRemainingColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task(name, total=None)

        def update(done, total, description=None):
            bar.update(task, completed=done, total=total,
                       **({"description": description} if description else {}))

        yield update


@contextlib.contextmanager
def spinner(shown: bool):
    """Yield a callback that shows the current long step on a spinner on stderr (None when
    not ``shown``)."""
    if not shown:
        yield None
        return
    from rich.console import Console

    with Console(stderr=True).status("working") as status:
        yield status.update
