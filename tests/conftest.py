"""Shared fixtures: tiny ImageNet-style trees made here, with fixed seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "data")
