"""The CLI through Typer's CliRunner: exit codes, one-line errors, --json, --help."""

import json
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from actdb.cli import app
from tests.helpers import SIZE, WEIGHTS, make_tree

runner = CliRunner()
COMMANDS = [[c.name or c.callback.__name__] for c in app.registered_commands] + [
    ["plot", c.name] for g in app.registered_groups for c in g.typer_instance.registered_commands]


@pytest.mark.parametrize("name", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(name):
    res = runner.invoke(app, [*name, "--help"])
    assert res.exit_code == 0
    assert "Example" in res.output


def test_help_is_instant_and_imports_nothing_heavy():
    code = ("import sys, time; t = time.perf_counter(); from actdb.cli import app; "
            "heavy = [m for m in ('tensorflow', 'faiss', 'duckdb', 'umap', 'matplotlib', "
            "'pyarrow') if m in sys.modules]; print(heavy)")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert time.perf_counter() - t < 5


def test_ingest_info_check_roundtrip(tmp_path):
    root = make_tree(tmp_path / "data", per_class=2)
    store = str(tmp_path / "s")
    res = runner.invoke(app, ["ingest", str(root), "--store", store, "--weights", WEIGHTS,
                              "--image-size", str(SIZE), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["ingested"] == 6 and summary["failed"] == 0
    info = json.loads(runner.invoke(app, ["info", "--store", store, "--json"]).stdout)
    assert info["images"] == 6 and info["classes"] == 3 and info["dim"] == 512
    assert info["images_per_split"] == {"train": 6}
    res = runner.invoke(app, ["check", "--store", store])
    assert res.exit_code == 0 and res.stdout.startswith("ok")
    res = runner.invoke(app, ["info"], env={"ACTDB_STORE": store})
    assert res.exit_code == 0 and "block5_conv4" in res.stdout


def test_errors_are_one_line_with_nonzero_exit(tmp_path):
    res = runner.invoke(app, ["ingest", str(tmp_path / "missing"), "--store",
                              str(tmp_path / "s")])
    assert res.exit_code == 1
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: dataset root")
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["ingest", str(tmp_path / "empty")])
    assert res.exit_code == 1 and "no images found" in res.stderr
    res = runner.invoke(app, ["info", "--store", str(tmp_path / "nostore")])
    assert res.exit_code == 1 and "no actdb store" in res.stderr


def test_imagenet_weights_failure_names_the_fixes(tmp_path, monkeypatch):
    """Simulate the offline machine whatever the network: Keras' download raises."""
    import keras.src.utils.file_utils as fu

    def offline(*a, **k):
        raise Exception("URL fetch failure on https://example/vgg19.h5: None -- no network")

    monkeypatch.setattr(fu, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    root = make_tree(tmp_path / "data", per_class=1)
    res = runner.invoke(app, ["ingest", str(root), "--store", str(tmp_path / "s"),
                              "--image-size", str(SIZE)])
    assert res.exit_code == 1
    msg = res.stderr.strip()
    assert "\n" not in msg and "--weights FILE" in msg and str(tmp_path / "kh" / "models") in msg
    assert not (tmp_path / "s" / "manifest.json").exists()  # nothing silently random


def test_check_exit_code_reflects_problems(built_store, tmp_path):
    import shutil

    s = tmp_path / "copy"
    shutil.copytree(built_store, s)
    next((s / "activations").glob("part-*.parquet")).unlink()
    res = runner.invoke(app, ["check", "--store", str(s)])
    assert res.exit_code == 1 and "problem:" in res.stdout
