"""Every refusal of POST /api/sql is tried, and shown to change nothing and read nothing."""

import pytest
from fastapi.testclient import TestClient

from actdb.serve.app import ServeConfig, create_app


@pytest.fixture(scope="module")
def client(built_store):
    with TestClient(create_app(ServeConfig(store=built_store, sql_max_rows=100, map_method=None,
                                           sql_timeout_s=1.0, warm_model=False))) as c:
        yield c


def sql(client, text):
    return client.post("/api/sql", json={"sql": text})


def test_select_over_the_views(client):
    r = sql(client, "SELECT count(*) AS n FROM activations JOIN images USING (image_id)")
    assert r.status_code == 200 and r.json()["rows"] == [[18]]
    r = sql(client, "SELECT * FROM range(5000)")
    assert len(r.json()["rows"]) == 100 and r.json()["truncated"] is True


@pytest.mark.parametrize("text,needle", [
    ("SELECT * FROM read_csv('/etc/passwd')", "not allowed"),
    ("SELECT * FROM read_text('/etc/hostname')", "not allowed"),
    ("SELECT * FROM read_parquet('/etc/*.parquet')", "not allowed"),
    ("COPY (SELECT * FROM images) TO '/tmp/actdb_leak.csv'", "only read-only"),
    ("ATTACH '/tmp/actdb_other.duckdb' AS o", "only read-only"),
    ("INSTALL httpfs", "only read-only"),
    ("LOAD httpfs", "only read-only"),
    ("SET enable_external_access = true", "only read-only"),
    ("PRAGMA database_list", "only read-only"),
    ("DELETE FROM images", "only read-only"),
    ("INSERT INTO failures VALUES ('r', 'p', NULL, NULL, NULL, 'x', 1, now())", "only read-only"),
    ("CREATE TABLE t AS SELECT 1", "only read-only"),
    ("DROP TABLE images", "only read-only"),
    ("SELECT 1; DELETE FROM images", "exactly one SQL statement"),
])
def test_refusals_change_nothing_and_read_nothing(client, tmp_path, text, needle):
    r = sql(client, text)
    assert r.status_code == 403, r.text
    assert needle in r.json()["error"]
    assert "root:" not in r.text
    import os

    assert not os.path.exists("/tmp/actdb_leak.csv")
    assert not os.path.exists("/tmp/actdb_other.duckdb")
    assert sql(client, "SELECT count(*) FROM images").json()["rows"] == [[18]]


@pytest.mark.slow
def test_time_limit_stops_long_queries(client):
    r = sql(client, "SELECT count(*) FROM range(100000000000) a")
    assert r.status_code == 504 and "longer than" in r.json()["error"]
    assert r.json()["type"] == "SqlTimeout"
    assert sql(client, "SELECT 1").status_code == 200


def test_bad_sql_is_400(client):
    r = sql(client, "SELEC 1")
    assert r.status_code == 400 and "SQL error" in r.json()["error"]
    missing = client.post("/api/sql", json={})  # the body's schema says sql is required
    assert missing.status_code == 422 and missing.json()["type"] == "ValidationError"
    assert "sql" in missing.json()["error"]
