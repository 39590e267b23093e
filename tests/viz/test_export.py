import io
import shutil

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from PIL import Image

import actdb
from actdb.viz.export import stratified, top_categories


@pytest.fixture
def db(built_store, tmp_path):
    shutil.copytree(built_store, tmp_path / "store")
    return actdb.open(tmp_path / "store")


def test_projector_files_agree_with_the_store_and_its_limits(db, tmp_path):
    r = db.space().export("projector", tmp_path / "proj")
    d = tmp_path / "proj"
    assert sorted(r.files) == sorted(p.name for p in d.iterdir()) and r.rows == 18
    tensors = np.loadtxt(d / "tensors.tsv", delimiter="\t")
    meta = pd.read_csv(d / "metadata.tsv", sep="\t")
    assert len(tensors) == len(meta) == 18
    _, want = db.space().vectors(meta.image_id.to_numpy())
    np.testing.assert_allclose(tensors, want, rtol=1e-5, atol=1e-9)
    images = db.images().set_index("image_id")
    assert (meta.class_name.to_numpy() == images.loc[meta.image_id, "class_name"]).all()
    config = (d / "projector_config.pbtxt").read_text()
    size = int(config.split("single_image_dim: ")[1].split()[0])
    with Image.open(d / "sprite.png") as sprite:
        per_row = int(np.ceil(np.sqrt(18)))
        assert sprite.size == (per_row * size, per_row * size) and max(sprite.size) <= 8192
        tile = np.asarray(sprite.crop((0, 0, size, size)))
    first = images.loc[meta.image_id[0]]
    with Image.open(f"{first.root}/{first.path}") as im:  # the first tile is the first row's
        original = np.asarray(im.convert("RGB").resize((size, size))).astype(float)
    assert np.abs(tile.astype(float) - original).mean() < 25
    assert 'tensor_path: "tensors.tsv"' in config and 'image_path: "sprite.png"' in config


def test_the_standalone_projector_finds_every_file_its_json_config_names(db, tmp_path):
    """Read as projector.tensorflow.org's DemoDataProvider does: each embedding's
    ``tensorPath``, ``metadataPath`` and ``sprite.imagePath`` fetched as written (here, under
    the ``--base-url`` given), the tensor as TSV of ``tensorShape``, one metadata row a point
    after the header, the sprite a grid of ``singleImageDim`` tiles."""
    import json
    import math

    base = "https://example.org/proj"
    db.space().export("projector", tmp_path / "proj", base_url=base + "/")
    config = json.loads((tmp_path / "proj" / "projector_config.json").read_text())
    (emb,) = config["embeddings"]

    def fetch(url: str):
        assert url.startswith(base + "/"), url
        return tmp_path / "proj" / url.removeprefix(base + "/")

    n, dim = emb["tensorShape"]
    assert np.loadtxt(fetch(emb["tensorPath"]), delimiter="\t").shape == (n, dim) == (18, 512)
    assert len(fetch(emb["metadataPath"]).read_text().splitlines()) == n + 1
    w, h = emb["sprite"]["singleImageDim"]
    with Image.open(fetch(emb["sprite"]["imagePath"])) as sprite:
        assert sprite.size == (math.ceil(math.sqrt(n)) * w, math.ceil(math.sqrt(n)) * h)
    db.space().export("projector", tmp_path / "plain")
    plain = json.loads((tmp_path / "plain" / "projector_config.json").read_text())
    assert plain["embeddings"][0]["tensorPath"] == "tensors.tsv"


def test_a_stratified_sample_keeps_every_class_within_the_cap(db):
    ids, _ = db.space().vectors()
    got, note = stratified(db.store, ids, None, cap=9, seed=0)
    classes = db.images().set_index("image_id").loc[got, "class_name"]
    assert len(got) == 9 and classes.value_counts().eq(3).all()
    assert "9 of 18 images, at most 3 a class" in note
    again, _ = stratified(db.store, ids, None, cap=9, seed=0)
    np.testing.assert_array_equal(got, again)
    assert stratified(db.store, ids, None, cap=100, seed=0)[1] is None


def test_categories_stay_under_the_tools_limits():
    names = pd.Series([f"class{i % 1000}" for i in range(5000)] + ["rare"] * 1)
    cats = top_categories(names, ["rare"], 255)
    assert cats.nunique() == 255 and "rare" in set(cats) and "other" in set(cats)
    assert top_categories(pd.Series(["a", "b", None]), None, 255).tolist() == ["a", "b",
                                                                               "other"]


def test_atlas_parquet_has_the_columns_embedding_atlas_reads(db, tmp_path):
    r = db.space().export("atlas", tmp_path / "a.parquet", method="pca", queries=["id:3"],
                          per_class=4)
    t = pq.read_table(tmp_path / "a.parquet")
    assert r.rows == t.num_rows == 13
    assert r.space == t.schema.metadata[b"actdb_space"].decode() == "vgg19/block5_conv4"
    names = set(t.schema.names)
    assert {"x", "y", "class_name", "class", "path", "image_id", "thumbnail"} <= names
    assert str(t.schema.field("thumbnail").type) == "struct<bytes: binary, path: string>"
    df = t.to_pandas()
    assert str(t.schema.field("image_id").type) == "int64" and df.image_id.dtype == np.int64
    q = df[df.is_query]
    assert q.class_name.tolist() == ["query: id:3"] and q.image_id.tolist() == [-1]
    assert not any(p.startswith("/") for p in df.path)  # nothing absolute of this machine
    m = db.space().map("pca", per_class=4)
    want = db.space().place("id:3", m.map_id).coords
    assert q.x.iloc[0] == pytest.approx(want.x[0], rel=1e-5)
    with Image.open(io.BytesIO(df.thumbnail.iloc[0]["bytes"])) as im:
        assert im.format == "JPEG" and max(im.size) <= 64 and im.size == (48, 40)  # no upscale
    assert df["class"].nunique() < 256


def test_parquet_joins_vectors_and_metadata(db, tmp_path):
    r = db.space().export("parquet", tmp_path / "v.parquet", classes="tench,groenendael",
                          where="split = 'train'")
    t = pq.read_table(tmp_path / "v.parquet")
    assert r.rows == t.num_rows == 12 and r.note is None
    assert str(t.schema.field("vec").type) == "fixed_size_list<element: float>[512]"
    with db.store.reader() as con:
        columns = [r[0] for r in con.execute("DESCRIBE images").fetchall()]
    assert t.schema.names == [*columns, "vec"]  # every image column, as the README says
    df = t.to_pandas()
    _, want = db.space().vectors(df.image_id.to_numpy())
    np.testing.assert_array_equal(np.stack(df.vec.to_numpy()), want)
    assert set(df.class_name) == {"tench", "groenendael"}
    images = db.images().set_index("image_id").loc[df.image_id]
    assert df.shard.tolist() == images.shard.tolist()
    assert df.run_id.tolist() == images.run_id.tolist()
    frame = pl.read_parquet(tmp_path / "v.parquet")  # polars: the same vectors, as arrays
    assert frame.schema["vec"] == pl.Array(pl.Float32, 512)
    np.testing.assert_array_equal(frame["vec"].to_numpy(), want)
    with pytest.raises(actdb.ActdbError, match="unknown export target"):
        db.space().export("csv", tmp_path / "x.csv")
