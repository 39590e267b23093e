"""Shared fixtures: tiny ImageNet-style trees made here, with fixed seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import test_bench_smoke
from tests.helpers import make_tree


def _of_bench_smoke(item) -> bool:
    return item.nodeid.startswith("tests/test_bench_smoke.py")


def pytest_collection_modifyitems(items: list) -> None:
    """The benchmark scripts' tests last: their runner works beside the others meanwhile."""
    items.sort(key=_of_bench_smoke)


def pytest_collection_finish(session) -> None:
    """Start the benchmark scripts' runner once tests that wait for it are selected."""
    if any("ran" in getattr(item, "fixturenames", ()) for item in session.items
           if _of_bench_smoke(item)):
        test_bench_smoke.start()


def pytest_sessionfinish(session) -> None:
    test_bench_smoke.stop()  # a run stopped early (-x, ^C) leaves no runner behind


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "data")


@pytest.fixture(autouse=True, scope="session")
def _no_onnx_export():
    """Ingests in tests keep no ONNX model (an export takes ~12 s; module-scoped stores are
    made before any function-scoped fixture): the tests of the ONNX route
    (tests/test_runtime.py) ask for it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ACTDB_ONNX", "0")
        yield
