"""actdb: an activation database for studying what convolutional networks have learned.

>>> import actdb
>>> db = actdb.open("actdb-store")            # doctest: +SKIP
>>> db.nearest("node4.png", k=50)             # doctest: +SKIP

Heavy libraries (TensorFlow, FAISS, DuckDB) are imported only when a function needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__", "open", "ingest", "ActdbError"]

from actdb.errors import ActdbError


def open(path=None):  # noqa: A001 - mirrors sqlite3.connect / duckdb.connect style
    """Open a store for queries (see :class:`actdb.query.db.Database`)."""
    from actdb.query.db import Database

    return Database.open(path)


def ingest(root, **options):
    """Ingest an image tree; keyword options are :class:`actdb.ingest.pipeline.IngestConfig`'s,
    plus those of :class:`actdb.models.embed.EmbedConfig`."""
    from dataclasses import fields

    from actdb.ingest.pipeline import IngestConfig
    from actdb.ingest.pipeline import ingest as run
    from actdb.models.embed import EmbedConfig

    embed_names = {f.name for f in fields(EmbedConfig)}
    embed = EmbedConfig(**{k: v for k, v in options.items() if k in embed_names})
    rest = {k: v for k, v in options.items() if k not in embed_names}
    return run(IngestConfig(root=root, embed=embed, **rest))
