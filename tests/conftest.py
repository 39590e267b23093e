"""Shared fixtures: tiny ImageNet-style trees made here, with fixed seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SIZE, WEIGHTS, make_tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "data")


@pytest.fixture(scope="session")
def built_store(tmp_path_factory) -> Path:
    """A store over 3 classes x 6 images (and one broken file), ingested once for the
    read-only tests."""
    from actdb.ingest.pipeline import IngestConfig, ingest
    from actdb.models.embed import EmbedConfig

    base = tmp_path_factory.mktemp("built")
    root = make_tree(base / "data", per_class=6)
    (root / "n01440764" / "broken.JPEG").write_bytes(b"\xff\xd8 truncated")  # one failure
    store = base / "store"
    ingest(IngestConfig(root=root, store=store, batch_size=8,
                        embed=EmbedConfig(weights=WEIGHTS, image_size=SIZE, precision="fp32")))
    return store
