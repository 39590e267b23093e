"""Shared fixtures: tiny ImageNet-style trees made here, with fixed seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import test_bench_smoke
from tests.helpers import make_tree

_BENCH = pytest.StashKey[bool]()  # are tests that wait for the bench runner selected?


def _of_bench_smoke(item) -> bool:
    return item.nodeid.startswith("tests/test_bench_smoke.py")


def _alone(item) -> bool:
    """FAISS's tests time single queries split over both cores: any process beside them
    (even at the lowest priority) made them ~10x slower, so they run first, before the
    benchmark scripts' runner starts."""
    return item.nodeid.startswith("tests/index/")


@pytest.hookimpl(trylast=True)  # after pytest's own grouping by fixture
def pytest_collection_modifyitems(items: list) -> None:
    """FAISS's tests first, the benchmark scripts' tests last: their runner works beside the
    others meanwhile."""
    items.sort(key=lambda item: (not _alone(item), _of_bench_smoke(item)))


def pytest_collection_finish(session) -> None:
    session.config.stash[_BENCH] = any(
        "ran" in getattr(item, "fixturenames", ()) for item in session.items
        if _of_bench_smoke(item))


def pytest_runtest_setup(item) -> None:
    """Start the benchmark scripts' runner with the first test after FAISS's, when tests that
    wait for it are selected."""
    if item.config.stash.get(_BENCH, False) and not _alone(item):
        test_bench_smoke.start()  # once


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
