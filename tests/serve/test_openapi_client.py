"""A client generated from the live ``/openapi.json`` (openapi-python-client, in its own
environment: see tests/openapi-client.txt) calls every endpoint; every answer has a declared
status, media type and, for JSON, a body valid against the declared schema."""

import importlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from fastapi.testclient import TestClient

from actdb.serve.app import ServeConfig, create_app
from tests.helpers import class_image

REPO = Path(__file__).parents[2]
GENERATOR = Path(os.environ.get("ACTDB_OPENAPI_CLIENT",
                                REPO / ".venv-openapi" / "bin" / "openapi-python-client"))
#: The generator's documented way to take images as files.
CONFIG = "content_type_overrides:\n" + "".join(
    f"  {t}: application/octet-stream\n" for t in ("image/png", "image/jpeg", "image/*"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(built_store, tmp_path_factory):
    """(the app's test client, the live spec, the generated client package)."""
    tmp = tmp_path_factory.mktemp("openapi")
    shutil.copytree(built_store, tmp / "store")
    assert GENERATOR.exists(), (
        f"no {GENERATOR}: python3 -m venv .venv-openapi && "
        ".venv-openapi/bin/pip install -r tests/openapi-client.txt (see the README)")
    app = create_app(ServeConfig(store=tmp / "store", warm_model=True, map_method=None))
    with TestClient(app, raise_server_exceptions=False) as http:
        spec = http.get("/openapi.json").json()
        (tmp / "openapi.json").write_text(json.dumps(spec))
        (tmp / "config.yaml").write_text(CONFIG)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        out = subprocess.run([str(GENERATOR), "generate", "--path", "openapi.json", "--meta",
                              "none", "--config", "config.yaml"], cwd=tmp, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "Warning" not in out.stdout, out.stdout + out.stderr
        sys.path.insert(0, str(tmp))
        try:
            yield http, spec, importlib.import_module("actdb_client")
        finally:
            sys.path.remove(str(tmp))
            for name in [m for m in sys.modules if m.split(".")[0] == "actdb_client"]:
                del sys.modules[name]


def checked(spec: dict, path: str, method: str, response) -> None:
    """The status is declared for this operation, with this media type; a JSON body is valid
    against its schema (the spec's components resolved as its ``$ref`` say)."""
    declared = spec["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in declared, f"{method} {path}: undeclared {status}: {response.content[:200]}"
    kind = response.headers["content-type"].split(";")[0]
    content = declared[status].get("content", {})
    media = next((m for m in content if m == kind or (m.endswith("/*") and
                                                       kind.startswith(m[:-1]))), None)
    assert media, f"{method} {path} {status}: {kind} not among {list(content)}"
    if media == "application/json":
        schema = {**content[media]["schema"], "components": spec["components"]}
        jsonschema.validate(json.loads(response.content), schema)


def png_bytes() -> bytes:
    buf = io.BytesIO()
    class_image(0, 7).save(buf, format="PNG")
    return buf.getvalue()


def test_a_generated_client_calls_every_endpoint_and_each_answer_matches_the_schema(served):
    http, spec, pkg = served
    from actdb_client import Client
    from actdb_client.api.default import (
        across,
        centroids,
        channels,
        classes,
        health,
        image_file,
        image_thumb,
        info,
        map_meta,
        map_points,
        maps,
        nearest,
        place,
        plot,
        spaces,
        sql,
    )
    from actdb_client.models import (
        BodyAcross,
        BodyCentroids,
        BodyNearest,
        BodyPlace,
        BodyPlot,
        SqlRequest,
    )
    from actdb_client.types import File

    client = Client(base_url=str(http.base_url), raise_on_unexpected_status=True)
    client.set_httpx_client(http)
    the_map = http.app.state.db.space().map("pca").map_id
    upload = File(payload=io.BytesIO(png_bytes()), file_name="q.png", mime_type="image/png")
    empty = File(payload=io.BytesIO(b""), file_name="", mime_type="application/octet-stream")
    calls = [  # (operation, its path and method, call, the status it must answer)
        (health, "/api/health", "get", dict(), 200),
        (info, "/api/info", "get", dict(), 200),
        (channels, "/api/channels", "get", dict(), 200),
        (classes, "/api/classes", "get", dict(), 200),
        (nearest, "/api/nearest", "post", dict(body=BodyNearest(image_id=3), k=5), 200),
        (nearest, "/api/nearest", "post",
         dict(body=BodyNearest(image_id=3), space="block5_conv4"), 200),
        (nearest, "/api/nearest", "post", dict(body=BodyNearest(image_id=3), space="no"), 404),
        (spaces, "/api/spaces", "get", dict(), 200),
        (across, "/api/across", "post", dict(body=BodyAcross(image_id=3), k=5), 200),
        (nearest, "/api/nearest", "post", dict(body=BodyNearest(image_id=3), space="all"),
         200),
        (centroids, "/api/centroids", "post",
         dict(body=BodyCentroids(image_id=3), space="all"), 200),
        (image_file, "/api/images/{image_id}", "get", dict(image_id=2**63), 422),
        (nearest, "/api/nearest", "post", dict(body=BodyNearest(image=upload), k=2), 200),
        (nearest, "/api/nearest", "post",  # an empty image part is one left out
         dict(body=BodyNearest(image=empty, image_id=3)), 200),
        (nearest, "/api/nearest", "post", dict(body=BodyNearest()), 400),
        (nearest, "/api/nearest", "post", dict(body=BodyNearest(vector="[1, 2]")), 400),
        (centroids, "/api/centroids", "post", dict(body=BodyCentroids(image_id=3), k=2), 200),
        (image_file, "/api/images/{image_id}", "get", dict(image_id=3), 200),
        (image_file, "/api/images/{image_id}", "get", dict(image_id=10**6), 404),
        (image_thumb, "/api/images/{image_id}/thumb", "get", dict(image_id=3, size=32), 200),
        (image_thumb, "/api/images/{image_id}/thumb", "get", dict(image_id=3, size=1), 422),
        (sql, "/api/sql", "post", dict(body=SqlRequest(sql="SELECT 1 AS x", max_rows=5)), 200),
        (sql, "/api/sql", "post", dict(body=SqlRequest(sql="DROP TABLE images")), 403),
        (sql, "/api/sql", "post", dict(body=SqlRequest(sql="   ")), 400),
        (plot, "/api/plot/{kind}", "post", dict(kind="distances", body=BodyPlot(image_id=3)),
         200),
        (plot, "/api/plot/{kind}", "post", dict(kind="nope", body=BodyPlot(image_id=3)), 404),
        (maps, "/api/maps", "get", dict(), 200),
        (map_meta, "/api/maps/{map_id}", "get", dict(map_id=the_map), 200),
        (map_meta, "/api/maps/{map_id}", "get", dict(map_id="nope"), 404),
        (map_points, "/api/maps/{map_id}/points", "get", dict(map_id=the_map), 200),
        (place, "/api/maps/{map_id}/place", "post",
         dict(map_id=the_map, body=BodyPlace(image_id=3), distances=True), 200),
        (place, "/api/maps/{map_id}/place", "post",
         dict(map_id=the_map, body=BodyPlace(image_id=3), space="block5_conv4"), 200),
    ]
    for op, path, method, kwargs, want in calls:
        res = op.sync_detailed(client=client, **kwargs)  # an undeclared status raises here
        assert res.status_code == want, (path, kwargs, res.content[:300])
        assert res.parsed is not None, (path, res.status_code)
        checked(spec, path, method, res)
    called = {(path, method) for _, path, method, _, _ in calls}
    offered = {(p, m) for p, ops in spec["paths"].items() for m in ops}
    assert called == offered, offered - called


def test_every_status_the_server_sends_is_declared_with_the_one_error_shape(served):
    http, spec, _ = served
    for op in (o for ops in spec["paths"].values() for o in ops.values()):
        for status, resp in op["responses"].items():
            if status.startswith(("4", "5")):
                assert resp["content"] == {"application/json": {"schema": {
                    "$ref": "#/components/schemas/ErrorBody"}}}, (op["operationId"], status)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    res = http.request("TRACE", "/api/health")  # RFC 9110: a 405 says what is allowed
    assert res.status_code == 405 and res.headers["allow"] == "GET"
    checked(spec, "/api/health", "get", res)
    big = http.post("/api/nearest", files={"image": ("q.png", b"x" * (9 * 2**20))})
    assert big.status_code == 413
    checked(spec, "/api/nearest", "post", big)
