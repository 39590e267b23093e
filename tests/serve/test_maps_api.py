"""The map endpoints: the default map made at start-up, its binary points, placement."""

import base64
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

import actdb
from actdb.serve.app import ServeConfig, create_app


@pytest.fixture(scope="module")
def client(built_store):
    with TestClient(create_app(ServeConfig(store=built_store, map_method="pca",
                                           warm_model=False))) as c:
        deadline = time.monotonic() + 60
        while c.get("/api/maps").json()["default"]["state"] == "building":
            assert time.monotonic() < deadline, "the default map was not made"
            time.sleep(0.1)
        yield c


def decode(data: bytes, meta: dict) -> dict:
    """The payload read with numpy, independently of the page's script."""
    n = meta["n"]
    return {f["name"]: np.frombuffer(data, np.dtype(f["dtype"]), n, f["offset"])
            for f in meta["layout"]}


def test_the_default_map_is_made_at_start_and_its_points_are_the_stored_ones(client,
                                                                             built_store):
    status = client.get("/api/maps").json()
    assert status["default"]["state"] == "ready"
    meta = client.get("/api/maps/default").json()
    assert meta["method"] == "pca" and meta["n"] == 18 and meta["current"]
    r = client.get(f"/api/maps/{meta['map_id']}/points")
    assert r.headers["content-type"] == "application/octet-stream"
    assert len(r.content) == meta["bytes"] == 18 * 20
    cols = decode(r.content, meta)
    m = actdb.open(built_store).space().stored_map(meta["map_id"])
    np.testing.assert_array_equal(cols["image_id"], m.points.image_id)
    np.testing.assert_array_equal(cols["x"], m.points.x.astype(np.float32))
    names = np.array(meta["classes"])[cols["class"]]
    assert (names == m.points.class_name.to_numpy()).all()
    assert any(x["map_id"] == meta["map_id"] for x in status["maps"])


def test_a_query_is_placed_with_its_distances_to_every_point(client, built_store):
    meta = client.get("/api/maps/default").json()
    r = client.post(f"/api/maps/{meta['map_id']}/place?distances=true",
                    data={"image_id": "4"})
    assert r.status_code == 200, r.text
    body = r.json()
    db = actdb.open(built_store)
    want = db.space().place("id:4", meta["map_id"])
    assert body["queries"][0]["x"] == pytest.approx(want.coords.x[0])
    d = np.frombuffer(base64.b64decode(body["distances"]), np.float32)
    ids = decode(client.get(f"/api/maps/{meta['map_id']}/points").content, meta)["image_id"]
    _, x = db.space().vectors(ids.astype(np.int64))
    q = db.space().vectors([4])[1][0]
    np.testing.assert_allclose(d, np.linalg.norm(x - q, axis=1), rtol=1e-5, atol=1e-7)


def test_unknown_maps_and_a_server_without_one_answer_clearly(client, built_store):
    for path in ("/api/maps/pca-nope/points", "/api/maps/0", "/api/maps/0/points"):
        r = client.get(path)
        assert r.status_code == 404 and "no map" in r.json()["error"], path
    for path in ("/api/maps/default?space=nosuch", "/api/maps/default/points?space=nosuch",
                 "/api/maps?space=nosuch"):
        r = client.get(path)
        assert r.status_code == 404 and "no space 'nosuch'" in r.json()["error"], path
    assert {m["space"] for m in client.get("/api/maps").json()["maps"]} == {
        "vgg19/block5_conv4"}
    with TestClient(create_app(ServeConfig(store=built_store, map_method=None,
                                           warm_model=False))) as c:
        assert c.get("/api/maps/default").json() == {"default": {
            "state": "off", "method": None, "map_id": None, "error": None}}
        r = c.get("/api/maps/default/points")
        assert r.status_code == 404 and "default map is off" in r.json()["error"]
        c.app.state.default_map.state = "building"  # as while the thread makes it
        r = c.get("/api/maps/default/points")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert "default map is building" in r.json()["error"]
