"""Shared fixtures: tiny ImageNet-style trees made here, with fixed seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_tree


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
