"""The ``actdb`` command line's frame: the Typer app, how errors and warnings become one line,
the shared output options, and ``main``. The commands live beside it (``build``, ``ask``,
``models``, ``show``); each parses its options, calls one method of ``actdb.open()`` or of
one of its spaces (``open_space``; or one face function) and renders the result.

This package is the only code that imports Typer. User mistakes (an :class:`ActdbError`, or an
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
SpaceOpt = typer.Option(None, "--space", help="The space to use: MODEL/LAYER, or a unique "
                        "short form such as block4_conv4 (default: the store's first; "
                        "`actdb spaces` lists them).", show_default=False)
RuntimeOpt = typer.Option(None, "--runtime", help="What embeds query images: onnx (ONNX "
                          "Runtime, no TensorFlow or PyTorch; exported once if the store has "
                          "no ONNX model), or the network's framework: keras, torch (default: "
                          "onnx where the store keeps a checked model, else the framework).",
                          show_default=False)
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


def fail(message: str, code: int) -> None:
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
                text = as_option_names(str(message), message.params, _option_names(fn))
                typer.echo(f"note: {text}", err=True)
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
            fail(as_option_names(str(exc), exc.params, _option_names(fn)), exc.exit_code)
        except BrokenPipeError:  # `actdb sql ... | head`: the reader left; go as Unix tools go
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}", 1)
        except KeyboardInterrupt:
            fail("interrupted; run the same command again to resume", 130)

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

    def arrow(self, table) -> None:
        """A pyarrow Table (``sql``'s answer): Parquet gets it as it is (its types kept,
        ``FLOAT[512]`` a fixed-size list of float32), the other formats its rows."""
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, self.path)
        else:
            self.rows(table.to_pylist(), table.column_names)


def output_options(fn):
    """Give a command the shared output options; it receives them as ``out: Output``."""
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

    return _with_options(wrapper, fn, "out", extra)


def _with_options(wrapper, fn, drop: str, extra: dict):
    """``wrapper`` showing Typer ``fn``'s parameters less ``drop`` (what the wrapper passes
    it) plus the keyword options ``extra`` (name -> (type, typer.Option))."""
    import inspect
    import typing

    own = [p for p in inspect.signature(fn).parameters.values() if p.name != drop]
    wrapper.__signature__ = inspect.Signature([*own, *(
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=o, annotation=t)
        for n, (t, o) in extra.items())])
    hints = typing.get_type_hints(fn)
    hints.pop(drop, None)
    wrapper.__annotations__ = {**hints, **{n: t for n, (t, _) in extra.items()}}
    return wrapper


def _option_type(hint) -> type:
    """The type an option of a config field takes on the command line: ``X | None`` is X,
    a tuple is one comma-separated string."""
    import types
    import typing

    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = args[0]
    return str if typing.get_origin(hint) is tuple else hint


def config_options(cls, leave: tuple[str, ...] = ()):
    """Give a command one option per field of the config dataclass ``cls`` that declares its
    help (``metadata={"help": ..., "flags": (...)}``; see ``actdb.options``), with the
    field's default, less the fields in ``leave``; it receives them as ``config: cls``. An
    option is declared once: in the config, not here, not in the face. A tuple field is one
    comma-separated option."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    declared = [f for f in dataclasses.fields(cls)
                if "help" in f.metadata and f.name not in leave]
    extra = {}
    for f in declared:
        t = _option_type(hints[f.name])
        default = f.default
        shown = ",".join(default) if isinstance(default, tuple) else default
        extra[f.name] = (t, typer.Option(shown, *f.metadata.get("flags", ()),
                                         help=f.metadata["help"],
                                         show_default=default is not None))

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            values = {f.name: kwargs.pop(f.name) for f in declared}
            for f in declared:
                if typing.get_origin(hints[f.name]) is tuple and isinstance(values[f.name],
                                                                            str):
                    values[f.name] = tuple(x.strip() for x in values[f.name].split(",")
                                           if x.strip())
            return fn(*args, config=cls(**values), **kwargs)

        return _with_options(wrapper, fn, "config", extra)

    return decorate


def recipe_options(fn):
    """Give a command one option per recipe field (``actdb.options.EmbedConfig``: its help
    and flags), each None unless given; it receives the given ones as ``recipe: dict`` (a
    store's recipe, or EmbedConfig's defaults, fills the rest where the command says)."""
    import dataclasses
    import typing

    from actdb.options import EmbedConfig

    fields, hints = dataclasses.fields(EmbedConfig), typing.get_type_hints(EmbedConfig)
    extra = {f.name: (_option_type(hints[f.name]),
                      typer.Option(None, *f.metadata["flags"], help=f.metadata["help"],
                                   show_default=False))
             for f in fields}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        given = {f.name: kwargs.pop(f.name) for f in fields}
        return fn(*args, recipe={k: v for k, v in given.items() if v is not None}, **kwargs)

    return _with_options(wrapper, fn, "recipe", extra)


def open_store(store: Path | None, runtime: str | None = None):
    """The store of ``--store`` (a Database)."""
    import actdb

    return actdb.open(store, runtime=runtime)


def open_space(store: Path | None, space: str | None, runtime: str | None = None):
    """The space of ``--space`` in the store of ``--store`` (a Space)."""
    return open_store(store, runtime).space(space)


def echo_json(obj) -> None:
    from actdb import render

    typer.echo(render.to_json(obj))


def echo_table(rows: list[dict], columns: list[str], title: str | None = None) -> None:
    from actdb import render

    typer.echo(render.table(rows, columns, title), nl=False)


def note(message: str) -> None:
    typer.echo(f"note: {message}", err=True)


def note_rebound(queries) -> None:
    for q in queries:
        if q.rebound:
            note(f"the query name {q.name!r} now refers to {q.source}; it referred to other "
                 "content before (use --name to keep both)")


def progress_bar(enabled: bool, name: str, unit: str = "img/s"):
    from actdb import render

    return render.progress_bar(enabled and sys.stderr.isatty(), name, unit)


def stages():
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
            fail(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}", 2)
        if "keras" in sys.modules:
            fail("--backend must be chosen before Keras is imported", 2)
        os.environ["KERAS_BACKEND"] = backend


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
        # about a second to every command that ran a model.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
