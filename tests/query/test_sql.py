import json

import numpy as np
import pytest
from typer.testing import CliRunner

import actdb
from actdb.cli import app
from actdb.errors import QueryError, SqlRefused

runner = CliRunner()


def test_documented_views_exist(built_store):
    db = actdb.open(built_store)
    for view in ("images", "activations", "classes", "centroids", "class_stats", "pair_stats",
                 "queries", "failures", "runs", "nn_sample"):
        db.sql(f"SELECT * FROM {view} LIMIT 1")
    d = db.sql("SELECT array_distance(a.vec, b.vec) AS d FROM activations a, activations b "
               "WHERE a.image_id = 0 AND b.image_id = 0").to_pandas()
    assert d.d.iloc[0] == 0


def test_sql_is_read_only_and_errors_are_one_line(built_store, tmp_path):
    db = actdb.open(built_store)
    with pytest.raises(SqlRefused, match="only read-only") as e:
        db.sql("DELETE FROM images")
    assert "\n" not in str(e.value)
    assert len(db.sql("SELECT * FROM images")) == 18
    with pytest.raises(QueryError, match="SQL error"):
        db.sql("SELEC nonsense")
    with pytest.raises(SqlRefused, match="exactly one SQL statement"):
        db.sql("SELECT 1; SELECT 2")
    (tmp_path / "outside.csv").write_text("a\n1\n")
    with pytest.raises(SqlRefused, match="not allowed"):
        db.sql(f"SELECT * FROM read_csv('{tmp_path / 'outside.csv'}')")
    assert db.sql("DESCRIBE images").num_rows == 12


def test_sql_formats(built_store, tmp_path):
    q = "SELECT class_name, mean_dist FROM class_stats ORDER BY mean_dist LIMIT 5"
    res = runner.invoke(app, ["sql", q, "--store", str(built_store), "--format", "json"])
    assert res.exit_code == 0 and len(json.loads(res.stdout)) == 3
    res = runner.invoke(app, ["sql", q, "--store", str(built_store), "--format", "csv"])
    assert res.stdout.splitlines()[0] == "class_name,mean_dist"
    out = tmp_path / "o.parquet"
    res = runner.invoke(app, ["sql", q, "--store", str(built_store), "--format", "parquet",
                              "-o", str(out)])
    import pyarrow.parquet as pq

    assert res.exit_code == 0 and pq.read_table(out).num_rows == 3
    res = runner.invoke(app, ["sql", "SELECT image_id, vec FROM activations ORDER BY image_id",
                              "--store", str(built_store), "--format", "parquet", "-o", str(out)])
    import pyarrow as pa

    got = pq.read_table(out)  # the vectors as DuckDB gives them: FLOAT[512], not list<double>
    assert res.exit_code == 0 and got.schema.field("vec").type == pa.list_(pa.float32(), 512)
    np.testing.assert_array_equal(np.stack(got.column("vec").to_numpy(zero_copy_only=False)),
                                  actdb.open(built_store).space().vectors()[1])
    res = runner.invoke(app, ["sql", "SELECT nope", "--store", str(built_store)])
    assert res.exit_code == 1 and res.stderr.startswith("error: SQL error")


def test_nearest_cli_json_and_csv(built_store):
    res = runner.invoke(app, ["nearest", "id:1", "id:2", "-k", "4", "--store", str(built_store),
                              "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert [q["query"] for q in d["queries"]] == ["id:1", "id:2"]
    assert len(d["queries"][0]["neighbors"]) == 4 and d["queries"][0]["classes"]
    res = runner.invoke(app, ["nearest", "id:1", "-k", "3", "--store", str(built_store),
                              "--csv"])
    lines = res.stdout.splitlines()
    assert len(lines) == 4 and "distance" in lines[0] and "nn_percentile" in lines[0]
    res = runner.invoke(app, ["centroids", "id:1", "--store", str(built_store), "--json"])
    assert res.exit_code == 0 and len(json.loads(res.stdout)) == 3
    res = runner.invoke(app, ["examples", "--channel", "4", "-k", "3", "--store",
                              str(built_store), "--json"])
    assert res.exit_code == 0 and len(json.loads(res.stdout)["top"]) == 3
