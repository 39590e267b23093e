"""Query names denote exactly one vector; the cache by content keeps everything."""

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

import actdb
from actdb.cli import app
from tests.helpers import class_image


@pytest.fixture
def store(built_store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(built_store, copy)
    return copy


@pytest.mark.slow
def test_reusing_a_name_for_other_content_rebinds_it(store, tmp_path):
    db = actdb.open(store)
    cached = db.sql("SELECT count(*) AS n FROM query_cache").to_pylist()[0]["n"]
    q = tmp_path / "node4.png"
    class_image(0, 1).save(q)
    first = db.space().nearest(str(q), k=1)
    assert not first.answers[0].query.rebound
    class_image(1, 2).save(q)  # another dream written to the same file name
    second = db.space().nearest(str(q), k=1)
    assert second.answers[0].query.rebound
    rows = db.sql("SELECT name, vec FROM queries WHERE name = 'node4'").to_pylist()
    assert len(rows) == 1  # one name, one vector: the newest
    np.testing.assert_allclose(rows[0]["vec"], second.answers[0].query.vec, rtol=1e-6)
    assert db.sql("SELECT count(*) AS n FROM query_cache").to_pylist() == [{"n": cached + 2}]
    again = db.space().nearest(str(q), k=1)  # the same content again: cached, not rebound
    assert again.context.cached[0] and not again.answers[0].query.rebound


@pytest.mark.slow
def test_a_second_name_for_the_same_content_keeps_the_first(store, tmp_path):
    db = actdb.open(store)
    q = tmp_path / "a.png"
    class_image(2, 3).save(q)
    db.space().nearest(str(q), k=1)
    db.space().nearest(str(q), k=1, names=["b"])
    rows = db.sql("SELECT name, sha256 FROM queries WHERE name IN ('a', 'b')").to_pylist()
    assert sorted(r["name"] for r in rows) == ["a", "b"] and rows[0]["sha256"] == rows[1][
        "sha256"]


@pytest.mark.slow
def test_the_cli_says_when_a_name_is_rebound(store, tmp_path):
    runner = CliRunner()
    q = tmp_path / "node4.png"
    class_image(0, 4).save(q)
    res = runner.invoke(app, ["nearest", str(q), "--store", str(store)])
    assert res.exit_code == 0 and "now refers to" not in res.stderr
    class_image(1, 5).save(q)
    res = runner.invoke(app, ["nearest", str(q), "--store", str(store)])
    assert res.exit_code == 0 and "'node4' now refers to" in res.stderr


@pytest.mark.slow
def test_a_server_handle_keeps_the_keys_in_memory_and_sees_other_writers(store, tmp_path):
    """A server's handle (writes deferred, keys in memory) binds names exactly like a plain one,
    and sees what another handle wrote meanwhile (the keys are re-read when the catalog
    changes); user SQL sees its pending writes."""
    server = actdb.open(store, defer_cache_writes=True)
    other = actdb.open(store)
    q = tmp_path / "node4.png"
    class_image(0, 6).save(q)
    first = server.space().nearest(str(q), k=1)
    assert not first.context.cached[0] and not first.answers[0].query.rebound
    assert server.sql("SELECT count(*) AS n FROM queries WHERE name = 'node4'"
                      ).to_pylist() == [{"n": 1}]  # pending, written before the SQL ran
    class_image(1, 7).save(q)
    by_other = other.space().nearest(str(q), k=1)  # another process's CLI call rebinds the name
    assert by_other.answers[0].query.rebound
    # the server sees that content as cached, not rebound
    again = server.space().nearest(str(q), k=1)
    assert again.context.cached[0] and not again.answers[0].query.rebound
    class_image(2, 8).save(q)
    third = server.space().nearest(str(q), k=1)
    assert third.answers[0].query.rebound and not third.context.cached[0]
    server.close()
    rows = other.sql("SELECT vec FROM queries WHERE name = 'node4'").to_pylist()
    np.testing.assert_allclose(rows[0]["vec"], third.answers[0].query.vec, rtol=1e-6)


@pytest.mark.slow
def test_writes_inside_a_holding_block_wait_for_its_end(store, tmp_path):
    db, other = actdb.open(store), actdb.open(store)
    q = tmp_path / "held.png"
    class_image(2, 9).save(q)

    def written() -> int:
        return other.sql("SELECT count(*) AS n FROM queries WHERE name = 'held'"
                         ).to_pylist()[0]["n"]

    with db.space()._ctx.cache.holding():
        first = db.space().resolve(str(q))[0]
        assert written() == 0 and db.space().resolve(str(q))[0].cached  # served from memory
    assert written() == 1
    assert not first.cached and not first.rebound


@pytest.mark.slow
def test_asking_the_same_question_again_writes_nothing(store, tmp_path, monkeypatch):
    from actdb.store import catalog

    q = tmp_path / "again.png"
    class_image(1, 11).save(q)
    actdb.open(store).space().nearest(str(q), k=1)
    writes = []
    real = catalog.writer
    monkeypatch.setattr(catalog, "writer", lambda *a, **k: writes.append(1) or real(*a, **k))
    db = actdb.open(store)
    # same name, same content
    assert db.space().nearest(str(q), k=1).context.cached[0] and not writes
    db.space().nearest(str(q), k=1, names=["other"])  # a new name for it is written
    assert len(writes) == 1
    assert db.sql("SELECT count(*) AS n FROM queries WHERE name IN ('again', 'other')"
                  ).to_pylist() == [{"n": 2}]


def test_a_named_vector_or_stored_image_gets_its_name_too(store, tmp_path, monkeypatch):
    from actdb.store import catalog

    db = actdb.open(store)
    ids, vecs = db.space().vectors()
    np.save(tmp_path / "vec.npy", vecs[2] * 0.5)
    runner = CliRunner()
    res = runner.invoke(app, ["nearest", str(tmp_path / "vec.npy"), "--name", "myvec",
                              "--store", str(store)])
    assert res.exit_code == 0, res.output
    db.space().nearest(f"id:{ids[3]}", k=1, names=["three"])
    rows = {r["name"]: r for r in db.sql("SELECT name, source, vec FROM queries WHERE name IN "
                                         "('myvec', 'three')").to_pylist()}
    np.testing.assert_array_equal(rows["myvec"]["vec"], vecs[2] * 0.5)
    np.testing.assert_array_equal(rows["three"]["vec"], vecs[3])
    assert rows["three"]["source"] == f"id:{ids[3]}"
    writes = []
    real = catalog.writer
    monkeypatch.setattr(catalog, "writer", lambda *a, **k: writes.append(1) or real(*a, **k))
    again = actdb.open(store)
    assert not again.space().nearest(f"id:{ids[3]}", k=1, names=["three"]).answers[0].query.rebound
    assert not writes  # the same binding again writes nothing
    other = again.space().nearest(f"id:{ids[4]}", k=1, names=["three"])  # other content: rebound
    assert other.answers[0].query.rebound and len(writes) == 1
    unnamed = again.space().nearest(f"id:{ids[5]}", k=1)  # no --name: nothing to bind
    assert len(writes) == 1 and unnamed.answers[0].query.name == f"id:{ids[5]}"
