"""The README is a contract: every command it shows parses, every SQL block runs through the
command line, every Python call names real methods and parameters."""

import ast
import inspect
import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import actdb
from actdb.cli import app
from actdb.database import Database

README = (Path(__file__).parents[1] / "README.md").read_text()
BASH = re.findall(r"```bash\n(.*?)```", README, re.S)
SQL_BLOCKS = [b for b in BASH if b.startswith("actdb sql - <<'SQL'")]


def command_lines() -> list[str]:
    lines = []
    for block in BASH:
        if block in SQL_BLOCKS:
            lines.append("actdb sql -")
            continue
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("actdb "):
                    lines.append(part)
    return lines


@pytest.mark.parametrize("line", command_lines())
def test_every_readme_command_parses(line):
    """The command exists and takes these options (parsing only: nothing runs)."""
    cmd, name = typer.main.get_command(app), "actdb"
    args = shlex.split(line)[1:]
    while hasattr(cmd, "commands"):  # a group (Typer brings its own Click): its own options
        ctx = cmd.make_context(name, list(args), resilient_parsing=True)
        rest = [*ctx._protected_args, *ctx.args]
        name, args = rest[0], rest[1:]
        assert name in cmd.commands, f"no command {name!r}"
        cmd = cmd.commands[name]
    cmd.make_context(name, args)  # raises on an unknown option or a missing argument


def test_the_readme_shows_sql_blocks():
    assert len(SQL_BLOCKS) >= 6


@pytest.fixture(scope="module")
def queried_store(built_store, tmp_path_factory):
    """A copy of the store that has answered a query named "node4", as the README's has, with
    a second space (random 8-d vectors, written without a model) and a comparison."""
    import shutil

    import numpy as np

    from actdb.store.manifest import Manifest
    from actdb.store.writer import StoreWriter
    from tests.helpers import class_image

    tmp = tmp_path_factory.mktemp("readme")
    store = tmp / "store"
    shutil.copytree(built_store, store)
    class_image(0, 42).save(tmp / "node4.png")
    with actdb.open(store) as db:
        db.space().nearest(str(tmp / "node4.png"), k=1)
        images = db.images()
    other = Manifest(model="synthetic", layer="b", pool="mean", dim=8, image_size=0,
                     resize="none", precision="fp32", weights="synthetic:0",
                     weights_sha256="sha-b", fingerprint="fp-b")
    rng = np.random.default_rng(0)
    with StoreWriter(store, other) as w:
        for shard, part in images.groupby("shard"):
            ids = part.image_id.to_numpy()
            w.fill(shard, w.spaces, ids, [rng.normal(size=(len(ids), 8))])
    actdb.open(store).compare(sample=100)
    return store


@pytest.mark.parametrize("block", SQL_BLOCKS, ids=lambda b: b.splitlines()[1][:40])
def test_every_readme_sql_block_runs_through_the_cli(queried_store, block):
    store = queried_store
    sql = block.split("<<'SQL'\n", 1)[1].rsplit("SQL\n", 1)[0]
    res = CliRunner().invoke(app, ["sql", "-", "--store", str(store), "--format", "json"],
                             input=sql)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() not in ("", "[]"), sql


SETUP = re.search(r"```sql\n(SET VARIABLE actdb_store = '[^']*';)\n```", README).group(1)


def duckdb_cli(catalog: Path, sql: str, cwd: Path) -> list[dict]:
    """Rows of ``sql`` from the DuckDB 1.x command-line client (a test dependency)."""
    import json
    import subprocess
    import sys

    cli = Path(sys.executable).with_name("duckdb")
    assert cli.exists(), "the duckdb-cli test dependency is missing: pip install -e '.[test]'"
    res = subprocess.run([str(cli), "-readonly", "-json", str(catalog), "-c", sql],
                         capture_output=True, text=True, timeout=60, cwd=cwd)
    assert res.returncode == 0 and not res.stderr, res.stderr
    return json.loads(res.stdout or "[]")


def same_rows(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(
            x[k] == pytest.approx(y[k], rel=1e-6) if isinstance(x[k], float) else x[k] == y[k]
            for k in x) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("block", SQL_BLOCKS, ids=lambda b: b.splitlines()[1][:40])
def test_every_readme_sql_block_runs_in_plain_duckdb_after_the_documented_line(
        queried_store, block, tmp_path):
    """The DuckDB 1.x CLI, read-only on the catalog, started elsewhere, after the README's one
    setup line, answers what ``actdb sql`` answers."""
    import json

    sql = block.split("<<'SQL'\n", 1)[1].rsplit("SQL\n", 1)[0]
    setup = SETUP.replace("/path/to/actdb-store", str(queried_store))
    rows = duckdb_cli(queried_store / "catalog.duckdb", f"{setup}\n{sql}", cwd=tmp_path)
    res = CliRunner().invoke(app, ["sql", "-", "--store", str(queried_store), "--format",
                                   "json"], input=sql)
    assert rows and same_rows(rows, json.loads(res.stdout)), (rows, res.stdout)


def test_plain_duckdb_started_in_the_store_needs_no_setup(queried_store):
    rows = duckdb_cli(queried_store / "catalog.duckdb", "SELECT count(*) AS n, "
                      "min(len(vec)) AS dim FROM activations", cwd=queried_store)
    assert rows == [{"n": actdb.open(queried_store).count(), "dim": 512}]


def test_every_readme_python_call_names_real_methods_and_parameters():
    python = re.findall(r"```python\n(.*?)```", README, re.S)
    assert python
    calls = 0
    for block in python:
        for node in ast.walk(ast.parse(block)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)):
                continue
            owner = {"db": Database, "actdb": actdb}.get(node.func.value.id)
            if owner is None:
                continue
            fn = getattr(owner, node.func.attr)  # AttributeError: the README names nothing
            params = inspect.signature(fn).parameters
            takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
            for kw in node.keywords:
                assert takes_any or kw.arg in params, f"{node.func.attr}({kw.arg}=...)"
            calls += 1
    assert calls >= 15
