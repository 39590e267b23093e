import numpy as np
import pytest
from typer.testing import CliRunner

import actdb
from actdb.cli import app
from tests.helpers import class_image

runner = CliRunner()


@pytest.mark.slow
def test_embed_equals_what_nearest_uses(built_store, tmp_path):
    img = tmp_path / "q.png"
    class_image(2, 7).save(img)
    vecs = actdb.open(built_store).space().embed([img])
    q = actdb.open(built_store).space().resolve(str(img))[0]
    assert q.name == "q"
    np.testing.assert_array_equal(vecs[0], q.vec)

    out = tmp_path / "q.npy"
    res = runner.invoke(app, ["embed", str(img), "-o", str(out), "--store", str(built_store)])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(np.load(out), q.vec)
    db = actdb.open(built_store)
    by_npy = db.space().nearest(str(out), k=5).neighbors.image_id.tolist()
    by_img = db.space().nearest(str(img), k=5).neighbors.image_id.tolist()
    assert by_npy == by_img


@pytest.mark.slow
def test_embed_parquet_with_explicit_recipe(tmp_path):
    import pyarrow.parquet as pq

    imgs = []
    for i in range(2):
        imgs.append(tmp_path / f"i{i}.png")
        class_image(i, i).save(imgs[-1])
    res = runner.invoke(app, ["embed", *map(str, imgs), "-o", str(tmp_path / "v.parquet"),
                              "--model", "vgg16", "--weights", "random:0",
                              "--image-size", "32"])
    assert res.exit_code == 0, res.output
    t = pq.read_table(tmp_path / "v.parquet")
    assert t.column("name").to_pylist() == ["i0", "i1"]
    assert t.column("vec").type.list_size == 512


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
def test_a_vector_with_values_float32_cannot_hold_is_refused(bad):
    from actdb.errors import QueryError
    from actdb.query.resolve import check_vector

    vec = np.ones(8)
    vec[3] = bad
    with pytest.raises(QueryError, match="NaN or infinite"):
        check_vector(vec, 8, "q.npy")
    assert check_vector(np.full(8, 3e38), 8, "q.npy").dtype == np.float32  # large, finite
    with pytest.raises(QueryError, match="not numbers"):
        check_vector(np.array(["a"] * 8), 8, "q.npy")


def test_queries_are_parsed_once_and_named_as_given(tmp_path, monkeypatch):
    """parse_queries reads each file once into a QuerySpec (its sha256 that of the bytes);
    a spec parsed before passes through unread, renamed when a name is given; only images
    and id:N can be asked of every space."""
    import hashlib
    from pathlib import Path

    from actdb.errors import QueryError
    from actdb.query.resolve import QuerySpec, Upload, parse_queries

    img, npy = tmp_path / "q.png", tmp_path / "v.npy"
    class_image(1, 3).save(img)
    np.save(npy, np.ones((2, 4), np.float32))
    reads = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: reads.append(p) or real(p))
    specs = parse_queries([str(img), "id:7", str(npy), np.zeros(4), Upload("up", b"x")],
                          [None, "seven"])
    assert reads == [img]
    assert [(q.name, q.source, q.askable, q.named) for q in specs] == [
        ("q", str(img), True, False), ("seven", "id:7", True, True),
        ("v", str(npy), False, False), ("vector3", "array", False, False),
        ("up", "up", True, False)]
    assert specs[0].sha256 == hashlib.sha256(img.read_bytes()).hexdigest()
    again = parse_queries(specs, ["renamed"])
    assert reads == [img, img]  # only the check above read it again
    assert again[1:] == specs[1:] and isinstance(again[0], QuerySpec)
    assert (again[0].name, again[0].data) == ("renamed", specs[0].data)
    with pytest.raises(QueryError, match="is not a file, an id:<image_id> or a .npy"):
        parse_queries([str(tmp_path / "gone.png")])
    with pytest.raises(QueryError, match="bad query 'id:x'"):
        parse_queries(["id:x"])
