"""What the command line prints: whole values off a terminal, parseable CSV, exact JSON."""

import csv
import io
import json

import numpy as np

from actdb import render


def test_tsv_keeps_every_value_whole():
    long_path = "val/" + "x" * 200 + ".JPEG"
    text = render.tsv([{"path": long_path, "d": 0.1234567890123}], ["path", "d"])
    assert long_path in text and "0.1234567890123" in text


def test_csv_arrays_are_json_lists_that_parse_back():
    vec = np.asarray([0.1, 1e-8, 3.0], np.float32)
    text = render.csv_text([{"name": "q", "vec": vec}], ["name", "vec"])
    row = next(csv.DictReader(io.StringIO(text)))
    assert (np.asarray(json.loads(row["vec"]), np.float32) == vec).all()


def test_json_keeps_float32_round_trips_and_maps_nan_to_null():
    vals = np.random.default_rng(0).random(100).astype(np.float32)
    back = json.loads(render.to_json({"v": vals, "nan": float("nan"), "n": np.int64(3)}))
    assert (np.asarray(back["v"], np.float32) == vals).all()
    assert back["nan"] is None and back["n"] == 3


def test_a_table_file_is_the_table_shown():
    text = render.rich_table([{"a": 1, "b": "x"}], ["a", "b"], width=200)
    assert "━" in text and "a" in text.splitlines()[0]


def test_a_terminal_shows_long_arrays_abbreviated_and_a_pipe_whole(monkeypatch):
    vec = np.arange(512, dtype=np.float32) / 3
    rows = [{"image_id": 7, "vec": vec}]
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    shown = render.table(rows, ["image_id", "vec"])
    assert "(512 values)" in shown and "170.3" in shown and "85.33" not in shown
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    piped = render.table(rows, ["image_id", "vec"])
    assert np.array_equal(np.asarray(json.loads(piped.splitlines()[1].split("\t")[1]),
                                     np.float32), vec)
