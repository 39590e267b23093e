"""The HTTP API through FastAPI's TestClient."""

import io
import json
import shutil

import pytest
from fastapi.testclient import TestClient
from PIL import Image

import actdb
from actdb import render
from actdb.serve.app import ServeConfig, create_app
from tests.helpers import class_image


@pytest.fixture(scope="module")
def client(built_store):
    with TestClient(create_app(ServeConfig(store=built_store, max_upload_bytes=200_000,
                                           sql_max_rows=100, sql_timeout_s=1.0,
                                           map_method="pca"))) as c:
        yield c


def _png(img=None) -> bytes:
    buf = io.BytesIO()
    (img or class_image(2, 11)).save(buf, "PNG")
    return buf.getvalue()


def test_space_all_answers_as_the_library_and_the_schema_declares_its_rows(client,
                                                                          built_store):
    db = actdb.open(built_store)
    r = client.post("/api/nearest?k=5&space=all&classes=tench", data={"image_id": "3"})
    assert r.status_code == 200, r.text
    want = db.across_spaces("id:3", k=5, classes="tench")
    assert r.json() == {"k": 5, "across": json.loads(json.dumps(render.records(want)))}
    r = client.post("/api/centroids?k=2&space=all", data={"image_id": "3"})
    assert [(c["space"], c["rank"]) for c in r.json()] == [("vgg19/block5_conv4", 1),
                                                           ("vgg19/block5_conv4", 2)]
    assert client.get("/api/info?space=block5_conv4").json()["space"] == "vgg19/block5_conv4"
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"space", "top_class", "route"} <= set(schemas["AcrossRow"]["properties"])
    assert {"name", "dim", "vectors", "view"} <= set(schemas["SpaceInfo"]["properties"])


def test_health_info_classes(client):
    assert client.get("/api/health").json() == {"status": "ok", "model_ready": True,
                                                "images": 18}
    assert client.get("/api/info").json()["dim"] == 512
    names = {c["class_name"] for c in client.get("/api/classes").json()}
    assert names == {"sea_cucumber", "groenendael", "tench"}
    assert "/api/nearest" in client.get("/openapi.json").json()["paths"]


def test_a_store_without_an_atlas_says_how_to_make_one(client):
    r = client.get("/atlas/")
    assert r.status_code == 404 and "make it with actdb atlas" in r.json()["error"]
    assert client.get("/atlas", follow_redirects=False).status_code in (307, 308)


def test_nearest_by_id_is_the_cli_content(client, built_store):
    r = client.post("/api/nearest?k=5", data={"image_id": "3"})
    assert r.status_code == 200
    lib = actdb.open(built_store).space().nearest("id:3", k=5)
    assert r.json() == json.loads(json.dumps(lib.to_dict(root=False)))
    root = lib.neighbors.root.iloc[0]
    assert root not in r.text  # the server's absolute paths stay on the server
    assert root not in client.get("/api/info").text


def test_nearest_by_upload_and_vector(client, built_store):
    r = client.post("/api/nearest?k=4", files={"image": ("q.png", _png(), "image/png")})
    assert r.status_code == 200, r.text
    q = r.json()["queries"][0]
    assert q["query"] == "q" and len(q["neighbors"]) == 4
    _, vecs = actdb.open(built_store).store.vectors([5])
    r = client.post("/api/nearest?k=1", data={"vector": json.dumps(vecs[0].tolist())})
    assert r.json()["queries"][0]["neighbors"][0]["image_id"] == 5
    r = client.post("/api/centroids?k=2", data={"image_id": "5"})
    assert r.status_code == 200 and len(r.json()) == 2


@pytest.mark.parametrize("files,data,status,needle", [
    ({"image": ("x.png", b"not an image at all", "image/png")}, None, 400, "not an image"),
    ({"image": ("big.png", b"0" * 300_000, "image/png")}, None, 413, "larger than"),
    (None, {"vector": "[1, 2, 3]"}, 400, "dim 512"),
    (None, {"vector": "nope"}, 400, "JSON list"),
    (None, None, 400, "exactly one"),
    (None, {"image_id": "99999"}, 400, "no stored image"),
])
def test_bad_input_is_refused_and_the_server_keeps_serving(client, files, data, status,
                                                           needle):
    r = client.post("/api/nearest", files=files, data=data)
    assert r.status_code == status, r.text
    assert needle in r.text
    assert client.get("/api/health").status_code == 200


def test_decompression_bomb_upload_is_refused(client):
    buf = io.BytesIO()
    Image.new("1", (9500, 9500)).save(buf, "PNG", optimize=True)
    assert len(buf.getvalue()) < 200_000
    r = client.post("/api/nearest", files={"image": ("bomb.png", buf.getvalue(), "image/png")})
    assert r.status_code == 400 and "decompression bomb" in r.text


def test_stored_images_and_thumbs(client, built_store):
    row = actdb.open(built_store).store.images().iloc[2]
    r = client.get(f"/api/images/{row.image_id}")
    assert r.status_code == 200
    with open(f"{row.root}/{row.path}", "rb") as fh:
        assert r.content == fh.read()
    t = client.get(f"/api/images/{row.image_id}/thumb?size=32")
    assert t.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(t.content)).size) <= 32
    assert client.get("/api/images/424242").status_code == 404


def test_nothing_outside_the_dataset_root_is_served(built_store, tmp_path):
    import duckdb

    copy = tmp_path / "copy"
    shutil.copytree(built_store, copy)
    con = duckdb.connect(str(copy / "catalog.duckdb"))
    con.execute("UPDATE images SET path = '../../../../../../etc/passwd' WHERE image_id = 0")
    con.close()
    with TestClient(create_app(ServeConfig(store=copy, warm_model=False, map_method=None))) as c:
        r = c.get("/api/images/0")
    assert r.status_code == 403 and "root:" not in r.text


def test_plot_endpoint_returns_png(client):
    r = client.post("/api/plot/profile?classes=tench", data={"image_id": "0"})
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.post("/api/plot/nope", data={"image_id": "0"}).status_code == 404


def test_token_is_checked_on_every_api_call(built_store):
    with TestClient(create_app(ServeConfig(store=built_store, token="s3cret", map_method=None,
                                           warm_model=False))) as c:
        assert c.get("/api/health").status_code == 401
        assert c.get("/api/health", headers={"Authorization": "Bearer s3cret"}
                     ).status_code == 200
        r = c.get("/api/info", headers={"X-Actdb-Token": "wrong"})
        assert r.status_code == 401 and r.json() == {"error": "missing or wrong token",
                                                     "type": "Unauthorized"}
        assert c.get("/").status_code == 200  # the page itself carries no data


def test_page_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and "<script>" in r.text and "http://" not in r.text
    assert '<link rel="icon" href="data:,">' in r.text  # no request for a /favicon.ico


def test_uploads_reach_the_query_cache_in_one_deferred_write(client, built_store):
    r = client.post("/api/nearest?k=1", files={"image": ("deferred.png", _png(class_image(0, 5)),
                                                         "image/png")})
    assert r.json()["queries"][0]["context"]["cached"] is False
    again = client.post("/api/nearest?k=1",
                        files={"image": ("deferred.png", _png(class_image(0, 5)), "image/png")})
    assert again.json()["queries"][0]["context"]["cached"] is True  # served from memory
    client.app.state.db.space()._ctx.flush_cache()
    names = actdb.open(built_store).sql("SELECT name FROM queries").to_pandas().name.tolist()
    assert "deferred" in names


@pytest.mark.parametrize("method,path,kwargs,status", [
    ("post", "/api/nearest?k=0", {"data": {"image_id": "1"}}, 422),   # FastAPI's validation
    ("post", "/api/nearest?k=abc", {"data": {"image_id": "1"}}, 422),
    ("post", "/api/nearest", {}, 400),                                 # our HTTPException
    ("get", "/api/images/abc", {}, 422),
    ("get", "/api/nosuch", {}, 404),                                   # Starlette's own
    ("post", "/api/sql", {"json": {"sql": "DROP TABLE images"}}, 403),  # an ActdbError
    ("post", "/api/centroids", {"data": {"image_id": "1"}, "params": {"classes": "nope"}}, 400),
    # numbers beyond images.image_id's BIGINT: refused, never an overflow (a 500)
    ("get", f"/api/images/{2**63}", {}, 422),
    ("get", f"/api/images/{2**64}/thumb", {}, 422),
    ("get", "/api/images/-1", {}, 422),
    ("post", "/api/across", {"data": {"image_id": str(2**63)}}, 422),
    ("post", "/api/nearest", {"data": {"image_id": str(10**30)}}, 422),
    ("post", "/api/plot/pca?random_classes=100000000000000000000", {"data": {"image_id": "1"}},
     422),
    ("get", "/api/info?space=nosuch", {}, 404),
    ("post", "/api/across?space=vgg19", {"data": {"image_id": "1"}}, 400),
])
def test_every_error_has_one_shape(client, method, path, kwargs, status):
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "type"} and body["error"] and "\n" not in body["error"]


@pytest.mark.parametrize("kind", ["pca", pytest.param("tsne", marks=pytest.mark.slow),
                                  "distances"])  # t-SNE: ~30 s on 2 cores
def test_every_plot_kind_is_served(client, kind):
    r = client.post(f"/api/plot/{kind}?classes=tench,groenendael", data={"image_id": "0"})
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
