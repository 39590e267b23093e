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


@pytest.mark.slow
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


def test_version():
    import actdb

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"actdb {actdb.__version__}"


def test_output_off_a_terminal_keeps_every_value_whole(built_store, tmp_path):
    import numpy as np

    import actdb

    store = str(built_store)
    res = runner.invoke(app, ["nearest", "id:1", "-k", "3", "--store", store])
    assert res.exit_code == 0 and "…" not in res.stdout
    path = actdb.open(built_store).space().nearest("id:1", k=1).neighbors.path.iloc[0]
    assert f"\t{path}" in res.stdout  # tab-separated, the whole path
    header = res.stdout.splitlines()[1].split("\t")  # after the title: the neighbours' table
    assert header[:3] == ["rank", "distance", "image_id"]  # an id to follow up with id:N
    ids, vecs = actdb.open(built_store).space().vectors([2])
    q = "SELECT vec FROM activations WHERE image_id = 2"
    res = runner.invoke(app, ["sql", q, "--format", "csv", "--store", store])
    cell = res.stdout.splitlines()[1].strip('"')
    assert (np.asarray(json.loads(cell), np.float32) == vecs[0]).all()  # parses back, exactly
    res = runner.invoke(app, ["sql", q, "--format", "json", "--store", store])
    assert (np.asarray(json.loads(res.stdout)[0]["vec"], np.float32) == vecs[0]).all()
    out = tmp_path / "out.table"
    res = runner.invoke(app, ["sql", "SELECT class_name, n_images FROM classes", "-o", str(out),
                              "--store", store])
    text = out.read_text()
    assert res.exit_code == 0 and "━" in text and "class_name" in text and "tench" in text


ROW_COMMANDS = [["nearest", "id:1", "-k", "3"], ["centroids", "id:1", "-k", "2"],
                ["sql", "SELECT class_name, n_images FROM classes ORDER BY 1"], ["stats"],
                ["examples", "--channel", "4", "-k", "3"], ["map", "--list"]]


@pytest.mark.slow
@pytest.mark.parametrize("cmd", ROW_COMMANDS, ids=lambda c: c[0])
def test_every_command_that_prints_rows_prints_them_in_every_format(built_store, tmp_path,
                                                                    cmd):
    """One shared set of output options: the rows of tsv, csv and parquet agree, and --json
    is --format json."""
    import csv
    import io

    import pyarrow.parquet as pq

    args = [*cmd, "--store", str(built_store)]
    out = {f: runner.invoke(app, [*args, "--format", f]) for f in ("tsv", "csv", "json")}
    assert all(r.exit_code == 0 for r in out.values()), {f: r.output for f, r in out.items()}
    tsv = list(csv.reader(io.StringIO(out["tsv"].stdout), delimiter="\t"))
    assert tsv == list(csv.reader(io.StringIO(out["csv"].stdout)))
    def answer(text):  # stats says how long it took
        d = json.loads(text)
        return {k: v for k, v in d.items() if k != "seconds"} if isinstance(d, dict) else d

    assert answer(runner.invoke(app, [*args, "--json"]).stdout) == answer(out["json"].stdout)
    res = runner.invoke(app, [*args, "--format", "parquet", "-o", str(tmp_path / "r.parquet")])
    assert res.exit_code == 0, res.output
    t = pq.read_table(tmp_path / "r.parquet")
    assert t.column_names == tsv[0] and t.num_rows == len(tsv) - 1
    res = runner.invoke(app, [*args, "--format", "parquet"])
    assert res.exit_code == 2 and "needs -o" in res.stderr
    res = runner.invoke(app, [*args, "--json", "--csv"])
    assert res.exit_code == 2 and "choose one" in res.stderr


def test_sql_from_stdin_and_from_a_file(built_store, tmp_path):
    q = "-- a comment first, as in the README\nSELECT count(*) AS n FROM images"
    res = runner.invoke(app, ["sql", "-", "--store", str(built_store), "--format", "json"],
                        input=q)
    assert res.exit_code == 0 and json.loads(res.stdout) == [{"n": 18}]
    (tmp_path / "q.sql").write_text(q)
    res = runner.invoke(app, ["sql", f"@{tmp_path / 'q.sql'}", "--store", str(built_store),
                              "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == [{"n": 18}]


def test_help_texts_name_only_real_options():
    res = runner.invoke(app, ["plot", "profile", "--help"])
    assert "--random-classes" not in res.output
    res = runner.invoke(app, ["plot", "distances", "--help"])
    assert "--random-classes" in res.output


@pytest.mark.slow
def test_dream_writes_the_format_its_name_asks_for(tmp_path):
    from PIL import Image

    res = runner.invoke(app, ["dream", "-o", str(tmp_path / "x.jpg"), "--weights", WEIGHTS,
                              "--size", "32", "--steps", "1", "--recipe", "seed", "--json"])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "x.jpg").format == "JPEG"
    d = json.loads(res.stdout)
    side = json.loads((tmp_path / "x.json").read_text())
    assert d["model_fingerprint"] == side["model_fingerprint"]


@pytest.mark.slow
def test_predict_prints_a_table_or_json_and_no_tensorflow_noise(tmp_path):
    from tests.helpers import class_image

    img = tmp_path / "x.png"
    class_image(0, 0).save(img)
    cmd = [sys.executable, "-m", "actdb", "predict", str(img), "--models", "mobilenet",
           "--weights", WEIGHTS, "--top", "2"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # TensorFlow's import-time notices are silenced
    lines = out.stdout.splitlines()
    assert lines[0].split("\t") == ["image", "model", "rank", "class_name", "wnid",
                                    "probability"] and len(lines) == 3
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert [t["class_name"] for t in json.loads(out.stdout)[0]["top"]] == \
        [ln.split("\t")[3] for ln in lines[1:]]


@pytest.mark.slow
def test_plots_print_no_third_party_noise(built_store, tmp_path):
    out = subprocess.run([sys.executable, "-m", "actdb", "plot", "umap", "--store",
                          str(built_store), "-o", str(tmp_path / "u.png")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stderr == "", out.stderr[-2000:]
    assert out.stdout.strip() == f"wrote {tmp_path / 'u.png'}"


def test_map_is_made_once_listed_and_exports_are_written(built_store, tmp_path):
    import shutil

    store = tmp_path / "store"
    shutil.copytree(built_store, store)
    args = ["map", "--method", "pca", "--per-class", "3", "--seed", "7", "--store", str(store)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0 and "9 points by pca, made in" in first.output
    assert "up to date" in runner.invoke(app, args).output
    map_id = first.output.split()[1].rstrip(":")
    listed = json.loads(runner.invoke(app, ["map", "--list", "--json", "--store",
                                            str(store)]).output)
    assert {(m["map_id"], m["points"], m["current"]) for m in listed} >= {(map_id, 9, True)}
    res = runner.invoke(app, ["export", str(tmp_path / "p"), "--to", "projector",
                              "--per-class", "2", "--store", str(store)])
    assert res.exit_code == 0 and "wrote 6 rows of the space vgg19/block5_conv4" in res.output
    assert "at most 2 a class" in res.output  # the sampling is said
    bad = runner.invoke(app, ["export", str(tmp_path / "x"), "--to", "csv", "--store",
                              str(store)])
    assert bad.exit_code != 0 and "unknown export target 'csv'" in bad.output
    bad = runner.invoke(app, ["serve", "--map", "mds", "--store", str(store)])
    assert bad.exit_code != 0 and "--map mds: use auto, umap, tsne, pca or none" in bad.output


def test_a_filtered_context_line_says_what_it_compares(built_store):
    res = runner.invoke(app, ["nearest", "id:0", "-k", "2", "--classes", "sea_cucumber",
                              "--store", str(built_store)])
    assert res.exit_code == 0, res.output
    line = res.stdout.strip().splitlines()[-1]
    assert "among all stored images" in line and "nearest of the filtered images" in line
    plain = runner.invoke(app, ["nearest", "id:0", "-k", "2", "--store", str(built_store)])
    assert "filtered" not in plain.stdout


@pytest.mark.slow
def test_a_reader_that_leaves_early_gets_no_error(built_store):
    cmd = (f"{sys.executable} -m actdb sql 'SELECT * FROM range(200000)' --store "
           f"{built_store} | head -n 1")
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() and "error" not in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
def test_a_saved_keras_model_ingests_and_answers_queries_like_a_registry_model(tmp_path):
    import keras

    import actdb

    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inp)
    x = keras.layers.Conv2D(12, 3, strides=2, activation="relu", name="c2")(x)
    out = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    model_file = tmp_path / "tuned.keras"
    keras.Model(inp, out).save(model_file)
    root = make_tree(tmp_path / "data", per_class=2)
    store = tmp_path / "s"
    res = runner.invoke(app, ["ingest", str(root), "--store", str(store), "--model",
                              str(model_file)])
    assert res.exit_code == 2 and "--preprocess" in res.stderr.strip().splitlines()[-1]
    res = runner.invoke(app, ["ingest", str(root), "--store", str(store), "--model",
                              str(model_file), "--preprocess", "tf", "--precision", "fp32"])
    assert res.exit_code == 0, res.output
    m = json.loads((store / "manifest.json").read_text())
    assert (m["layer"], m["dim"], m["image_size"], m["preprocess"], m["weights"]) == (
        "c2", 12, SIZE, "tf", "saved")
    db = actdb.open(store)
    image = next(root.rglob("*.JPEG"))
    hit = db.space().nearest(str(image), k=1, include_self=True)
    assert hit.context.nn_distance[0] < 1e-4
    res = runner.invoke(app, ["layers", str(model_file), "--preprocess", "tf", "--json"])
    rows = json.loads(res.stdout)
    assert [r["layer"] for r in rows if r["default"]] == ["c2"]
    assert {r["layer"]: r["spatial"] for r in rows}["head"] is False
    res = runner.invoke(app, ["dream", "--model", str(model_file), "--preprocess", "tf",
                              "--channel", "3", "--steps", "2", "-o", str(tmp_path / "d.png"),
                              "--json"])
    assert res.exit_code == 0, res.output
    dreamt = json.loads(res.stdout)["config"]
    assert (dreamt["layer"], dreamt["image_size"], dreamt["channel"]) == ("c2", SIZE, 3)
    # a retrained file is refused by its weights, a lost one named
    retrained = keras.saving.load_model(model_file)
    retrained.get_layer("c1").kernel.assign(retrained.get_layer("c1").kernel * 2)
    retrained.save(model_file)
    other = sorted(root.rglob("*.JPEG"))[-1]  # not asked before: not in the query cache
    res = runner.invoke(app, ["nearest", str(other), "--store", str(store)])
    assert res.exit_code == 1 and f"weights at {model_file.resolve()} are not" in res.stderr
    model_file.unlink()
    res = runner.invoke(app, ["nearest", str(other), "--store", str(store)])
    assert res.exit_code == 1 and "model file" in res.stderr and "is missing" in res.stderr


@pytest.mark.parametrize(("path", "config", "left"), [
    (("atlas",), "AtlasConfig", ()),
    (("dream",), "DreamConfig", ()),
    (("compare",), "CompareConfig", ()),
    (("stats",), "StatsConfig", ()),
    (("report",), "ReportConfig", ("log",)),
    (("plot", "umap"), "PlotConfig", ("log", "bins")),
    (("plot", "distances"), "PlotConfig", ("per_class",)),
    (("plot", "profile"), "PlotConfig", ("random_classes", "per_class", "seed", "log", "bins")),
])
def test_options_are_config_fields_declared_once(path, config, left):
    """Each option of these commands is a field of its config in actdb.options: its help,
    flags and default are the field's (cli.app.config_options), none is declared twice."""
    import dataclasses

    import typer.main

    import actdb.options

    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    opts = {p.name: p for p in cmd.params}
    declared = [f for f in dataclasses.fields(getattr(actdb.options, config))
                if "help" in f.metadata]
    assert declared and {f.name for f in declared} - set(opts) == set(left)
    for f in declared:
        if f.name in left:
            continue
        default = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        assert (opts[f.name].help, opts[f.name].default) == (f.metadata["help"], default)
        flags = {x for flag in f.metadata["flags"] for x in flag.split("/")}
        assert flags <= {*opts[f.name].opts, *opts[f.name].secondary_opts}


@pytest.mark.parametrize("command", ["ingest", "embed", "dream"])
def test_recipe_options_are_the_recipe_fields_declared_once(command):
    """ingest and embed take each EmbedConfig field as an option with the field's help and
    flags, None unless given (a store's recipe, or the defaults, fill the rest); dream takes
    the recipe fields it has (not precision: fp32 unless asked) the same way."""
    import dataclasses

    import typer.main

    from actdb.options import DreamConfig, EmbedConfig

    opts = {p.name: p for p in typer.main.get_command(app).commands[command].params}
    fields = dataclasses.fields(EmbedConfig)
    if command == "dream":
        fields = [f for f in fields if f.name in DreamConfig.__dataclass_fields__
                  and f.name != "precision"]
        assert len(fields) == 5
    for f in fields:
        assert (opts[f.name].help, opts[f.name].default) == (f.metadata["help"], None)
        assert set(f.metadata["flags"]) <= set(opts[f.name].opts)


def test_embed_refuses_a_recipe_option_without_a_model(tmp_path):
    res = runner.invoke(app, ["embed", str(tmp_path / "x.png"), "-o", str(tmp_path / "x.npy"),
                              "--pool", "max"])
    assert res.exit_code == 2 and "--pool goes with --model" in res.stderr


def test_atlas_and_dream_flags():
    """Short and boolean flags come from the fields; ``--size`` still names the input size."""
    import typer.main

    cmds = typer.main.get_command(app).commands
    opts = {p.name: p for p in cmds["atlas"].params}
    assert "-k" in opts["k"].opts and "--no-heatmaps" in opts["heatmaps"].secondary_opts
    for name in ("atlas", "dream"):
        size = next(p for p in cmds[name].params if p.name == "image_size")
        assert {"--image-size", "--size"} <= set(size.opts)
