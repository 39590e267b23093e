"""The catalog: the only code that spells the store's file names, its schema and its SQL.

- :mod:`.files`: file and folder names;
- :mod:`.schema`: every table and view (DDL);
- :mod:`.connection`: concurrent readers, a writer only around a commit;
- :mod:`.reads` / :mod:`.derived` / :mod:`.writes`: named reads (of the store's own tables;
  of what is derived from them: statistics, cache, maps, atlas, checks) and writes.

User SQL (``actdb sql``) runs over the views this package makes; nothing else in actdb writes
SQL against the catalog's tables.
"""

from actdb.store.catalog import derived, files, reads, schema, writes
from actdb.store.catalog.connection import (
    STORAGE_VERSION,
    close_idle,
    readable_by_1x,
    reader,
    rewrite_catalog,
    writer,
)

__all__ = ["files", "reads", "derived", "schema", "writes", "reader", "writer", "close_idle",
           "STORAGE_VERSION", "readable_by_1x", "rewrite_catalog"]
