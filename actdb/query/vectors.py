"""Turn query specs into vectors, exactly as the store's images were embedded.

A query is an image file, ``id:<image_id>`` of a stored image, a ``.npy`` vector (or a stack of
them) of the store's dim, or raw image bytes (uploads). Image queries are embedded by an
:class:`Embedder` built from the store's manifest, and cached in the catalog's ``query_cache``
keyed by (sha256 of the file, model fingerprint): asking again skips the model entirely.

>>> qs = QueryResolver(Store.open("actdb-store")).resolve(["node4.png", "id:17"])  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from actdb.errors import QueryError, StoreError, StoreMismatch
from actdb.store.store import Store


@dataclass
class QueryVector:
    """One resolved query."""

    name: str
    source: str
    vec: np.ndarray
    image_id: int | None = None  # set for id: queries
    cached: bool = False


@dataclass(frozen=True)
class Upload:
    """Image bytes from somewhere other than a file (an HTTP upload)."""

    name: str
    data: bytes


class QueryResolver:
    """Resolves queries against one store; builds the store's model at most once."""

    def __init__(self, store: Store, id_lookup=None):
        self.store = store
        self._id_lookup = id_lookup  # image_id -> vector or None (a faster source, optional)
        self._embedder = None
        self._lock = threading.Lock()
        self._pending_rows: list[tuple] | None = None  # a list once writes are deferred
        self._recent: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()

    @property
    def embedder(self):
        """The store's Embedder, built on first use and checked against the manifest."""
        with self._lock:
            if self._embedder is None:
                from actdb.models.embed import EmbedConfig, Embedder

                m = self.store.manifest
                emb = Embedder(EmbedConfig(
                    model=m.model, layer=m.layer, pool=m.pool, weights=m.weights,
                    image_size=m.image_size, resize=m.resize, precision=m.precision))
                if emb.weights_sha256 != m.weights_sha256:
                    raise StoreMismatch(
                        f"the weights at {m.weights} are not the ones this store was built with "
                        f"(sha256 {emb.weights_sha256[:12]} != {m.weights_sha256[:12]}); "
                        "restore the original weights file")
                self._embedder = emb
            return self._embedder

    def defer_cache_writes(self, interval_s: float = 1.0) -> None:
        """Write the query cache from a background thread every ``interval_s`` in one
        transaction, instead of one read-write connection per query (for the server, whose
        catalog connections take turns); pending vectors are served from memory meanwhile and
        flushed at exit."""
        import atexit

        self._pending_rows = []

        def loop():
            while True:
                time.sleep(interval_s)
                self.flush_cache_writes()

        threading.Thread(target=loop, name="actdb-cache-writer", daemon=True).start()
        atexit.register(self.flush_cache_writes)

    def flush_cache_writes(self) -> None:
        with self._lock:
            if not self._pending_rows:
                return
            rows, self._pending_rows = self._pending_rows, []
        self._write_cache(rows)

    def use_embedder(self, embedder) -> None:
        """Replace the embedder (e.g. with a batching wrapper around it)."""
        with self._lock:
            self._embedder = embedder

    def resolve(self, specs: list, names: list[str] | None = None) -> list[QueryVector]:
        """Resolve every spec; image queries are embedded together in one batch."""
        out: list[QueryVector | None] = []
        pending: list[tuple[int, str, str, bytes]] = []  # (slot, name, source, data)
        for n, spec in enumerate(specs):
            name = names[n] if names and n < len(names) and names[n] else None
            if isinstance(spec, QueryVector):
                out.append(spec)
            elif isinstance(spec, Upload):
                out.append(None)
                pending.append((len(out) - 1, name or spec.name, spec.name, spec.data))
            elif isinstance(spec, np.ndarray):
                out.extend(self._from_array(spec, name or f"vector{n}", "array"))
            elif str(spec).startswith("id:"):
                out.append(self._from_id(str(spec)))
            elif str(spec).lower().endswith(".npy"):
                out.extend(self._from_npy(Path(spec), name))
            else:
                p = Path(spec)
                if not p.is_file():
                    raise QueryError(f"query {spec} is not a file, an id:<image_id> or a .npy")
                out.append(None)
                pending.append((len(out) - 1, name or p.stem, str(p), p.read_bytes()))
        if pending:
            for slot, q in zip([p[0] for p in pending], self._embed(pending), strict=True):
                out[slot] = q
        return out  # type: ignore[return-value]

    def _check_dim(self, vec: np.ndarray, what: str) -> np.ndarray:
        dim = self.store.manifest.dim
        if vec.ndim != 1 or vec.shape[0] != dim:
            raise QueryError(f"{what} has shape {vec.shape}; this store's vectors have dim {dim}")
        if not np.all(np.isfinite(vec)):
            raise QueryError(f"{what} has NaN or infinite values")
        return vec.astype(np.float32)

    def _from_array(self, arr: np.ndarray, name: str, source: str) -> list[QueryVector]:
        arr = np.asarray(arr)
        if arr.ndim == 2:
            return [QueryVector(f"{name}[{i}]", source, self._check_dim(r, f"{source} row {i}"))
                    for i, r in enumerate(arr)]
        return [QueryVector(name, source, self._check_dim(arr, source))]

    def _from_npy(self, path: Path, name: str | None) -> list[QueryVector]:
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise QueryError(f"cannot read {path}: {exc}") from None
        return self._from_array(arr, name or path.stem, str(path))

    def _from_id(self, spec: str) -> QueryVector:
        try:
            image_id = int(spec[3:])
        except ValueError:
            raise QueryError(f"bad query {spec!r}: use id:<integer image_id>") from None
        vec = self._id_lookup(image_id) if self._id_lookup else None
        if vec is None:
            vec = self.store.vectors([image_id])[1][0]
        return QueryVector(spec, spec, vec, image_id=image_id)

    def _embed(self, pending: list[tuple[int, str, str, bytes]]) -> list[QueryVector]:
        fp = self.store.manifest.fingerprint
        shas = [hashlib.sha256(p[3]).hexdigest() for p in pending]
        with self._lock:  # the writer thread trims _recent concurrently
            cached = {s: self._recent[s] for s in shas if s in self._recent}
        unknown = [s for s in shas if s not in cached]
        if unknown:
            with self.store.connect() as con:
                con.register("wanted", pa.table({"sha256": unknown}))
                cached.update({r[0]: np.asarray(r[1], np.float32) for r in con.execute(
                    "SELECT sha256, vec FROM query_cache JOIN wanted USING (sha256) "
                    "WHERE fingerprint = ?", [fp]).fetchall()})
        todo = [i for i, s in enumerate(shas) if s not in cached]
        if todo:
            vecs = self.embedder.embed_files([pending[i][3] for i in todo])
            for i, v in zip(todo, vecs, strict=True):
                cached[shas[i]] = v
        out = [QueryVector(p[1], p[2], cached[s], cached=i not in todo)
               for i, (p, s) in enumerate(zip(pending, shas, strict=True))]
        self._remember(out, shas, fp)
        return out

    def _remember(self, queries: list[QueryVector], shas: list[str], fp: str) -> None:
        """Upsert into query_cache (name updated; the vector for a sha/fingerprint never
        changes). Best effort: a read-only or busy store still answers the query."""
        rows = [(s, fp, q.name, q.source, q.vec.tolist()) for q, s in zip(queries, shas,
                                                                         strict=True)]
        if self._pending_rows is not None:
            with self._lock:
                self._pending_rows.extend(rows)
                for q, s in zip(queries, shas, strict=True):
                    self._recent[s] = q.vec
                    self._recent.move_to_end(s)
                while len(self._recent) > 10_000:
                    self._recent.popitem(last=False)
            return
        self._write_cache(rows)

    def _write_cache(self, rows: list[tuple]) -> None:
        try:
            from actdb.store import catalog

            with catalog.connect(self.store.path, read_only=False, views=False,
                                 timeout=5) as con:
                con.executemany(
                    "INSERT OR REPLACE INTO query_cache (sha256, fingerprint, name, source, vec) "
                    "VALUES (?, ?, ?, ?, ?)", rows)
        except (StoreError, OSError):
            pass


def embed_images(images: list, store: str | Path | None = None, config=None,
                 ) -> tuple[list[str], np.ndarray]:
    """Pooled vectors of image files: with a store, exactly the embedding ``nearest`` uses for
    it (its manifest's recipe, checked weights); else the recipe of ``config`` (EmbedConfig).

    >>> names, vecs = embed_images(["node4.png"], store="actdb-store")   # doctest: +SKIP
    """
    if config is None:
        embedder = QueryResolver(Store.open(store)).embedder
    else:
        from actdb.models.embed import Embedder

        embedder = Embedder(config)
    paths = [Path(p) for p in images]
    for p in paths:
        if not p.is_file():
            raise QueryError(f"{p} is not a file")
    return [p.stem for p in paths], embedder.embed_files(paths)


def write_vectors(path: str | Path, names: list[str], vecs: np.ndarray) -> Path:
    """Write vectors as ``.npy`` (one row per image, or a single vector for one image) or
    ``.parquet`` (name, vec)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        np.save(path, vecs[0] if len(vecs) == 1 else vecs)
    elif path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        col = pa.FixedSizeListArray.from_arrays(pa.array(vecs.astype(np.float32).ravel()),
                                                vecs.shape[1])
        pq.write_table(pa.table({"name": names, "vec": col}), path)
    else:
        raise QueryError(f"cannot write {path.suffix or 'files without extension'}: "
                         "use -o FILE.npy or FILE.parquet")
    return path
