"""No head-of-line blocking: one user's slow SQL does not stall everyone's uploads."""

import io
import statistics
import threading
import time

import pytest
from fastapi.testclient import TestClient

from actdb.serve.app import ServeConfig, create_app
from tests.helpers import class_image

SLOW_SQL = "SELECT count(*) FROM range(10000000000000) t(a) WHERE a % 7 = 3"


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    class_image(i % 3, 500 + i, size=(96, 80)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_a_new_upload_is_not_held_up_by_a_slow_sql_query(built_store):
    cfg = ServeConfig(store=built_store, sql_timeout_s=10.0, map_method=None)  # margin: slow CI
    with TestClient(create_app(cfg)) as client:
        def upload(i: int) -> float:  # a new image each time: the model runs
            t = time.perf_counter()
            r = client.post("/api/nearest?k=5", files={"image": (f"hol{i}.png", _png(i),
                                                                 "image/png")})
            assert r.status_code == 200, r.text
            assert r.json()["queries"][0]["context"]["cached"] is False
            return time.perf_counter() - t

        upload(0)  # warm-up
        idle = statistics.median(upload(i) for i in range(1, 6))
        answer = {}

        def slow():
            answer["r"] = client.post("/api/sql", json={"sql": SLOW_SQL})

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.5)  # the query is running
        busy = [upload(i) for i in range(6, 11)]
        assert t.is_alive(), "the slow query should still be running"
        t.join(timeout=30)
    assert answer["r"].status_code == 504
    assert statistics.median(busy) <= 2 * idle, (idle, busy)
