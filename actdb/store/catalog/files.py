"""The names of every file and folder in a store (nothing else in actdb spells them).

>>> shard_path(Path("s"), "part-1.parquet").as_posix()
's/activations/part-1.parquet'
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

MANIFEST = "manifest.json"
CATALOG = "catalog.duckdb"
SHARD_DIR = "activations"
SHARD_GLOB = "part-*.parquet"
INDEX = "index.faiss"
INDEX_INFO = "index.json"
WRITER_LOCK = ".lock"
#: Touched by a writer while another process's readers hold the catalog: they yield to it.
WRITER_WAITING = ".catalog-writer-waiting"
ATLAS_DIR = "atlas"
MAP_DIR = "maps"
#: A space's embedding model as ONNX (uint8 images in, pooled vectors out), for queries.
ONNX_MODEL = "model.onnx"
#: Every space but the default keeps its manifest, shards and index in a folder of its own.
SPACES_DIR = "spaces"


def space_folder(model: str, layer: str) -> str:
    """A further space's folder, relative to the store (the default space's is ``""``).

    >>> space_folder("resnet50", "conv5_block3_out")
    'spaces/resnet50+conv5_block3_out'
    """
    return f"{SPACES_DIR}/{model}+{layer}"


def space_dir(store: Path, folder: str) -> Path:
    """Where a space's manifest, shards and index live (its folder under the store)."""
    return Path(store) / folder if folder else Path(store)


def shard_path(store: Path, name: str) -> Path:
    return Path(store) / SHARD_DIR / name


def catalog_path(store: Path) -> Path:
    return Path(store) / CATALOG


def catalog_wal_path(store: Path) -> Path:
    """DuckDB's write-ahead log beside the catalog (present while a commit is unfinished)."""
    return Path(store) / f"{CATALOG}.wal"


def shard_name(run_id: int, seq: int, pid: int) -> str:
    """A new shard's file name: unique per run, commit and process; matches SHARD_GLOB.

    >>> shard_name(3, 12, 999)
    'part-r0003-00012-999.parquet'
    """
    return f"part-r{run_id:04d}-{seq:05d}-{pid}.parquet"


def index_path(store: Path) -> Path:
    return Path(store) / INDEX


def index_info_path(store: Path) -> Path:
    return Path(store) / INDEX_INFO


def onnx_model_path(space: Path) -> Path:
    """A space's ONNX model (``space``: the space's folder)."""
    return Path(space) / ONNX_MODEL


def onnx_optimized_path(space: Path, key: str) -> Path:
    """ONNX Runtime's optimised graph of a space's model for one machine and runtime version
    (``key``), cached beside the model so a later process skips the graph optimisation.

    >>> onnx_optimized_path(Path("s"), "ab12").as_posix()
    's/model.ab12.ort.onnx'
    """
    return Path(space) / f"model.{key}.ort.onnx"


def writer_waiting_path(store: Path) -> Path:
    return Path(store) / WRITER_WAITING


def atlas_picture(store: Path, model: str, layer: str, recipe: str, objective: str, seed: int,
                  channel: int) -> Path:
    """A channel's picture (its JSON sidecar beside it); ``model`` is a name, never a path
    (``Manifest.model_label``)."""
    return (Path(store) / ATLAS_DIR / model / layer / f"{recipe}-{objective}-seed{seed}"
            / f"{channel}.png")


def atlas_site(store: Path) -> Path:
    """The atlas's static site kept in the store (what ``actdb serve`` shows at /atlas)."""
    return Path(store) / ATLAS_DIR / "site"


def map_model_path(store: Path, map_id: str) -> Path:
    """The fitted projection of a map (what places new queries into it)."""
    return Path(store) / MAP_DIR / f"{map_id}.pkl"


def manifest_path(store: Path) -> Path:
    return Path(store) / MANIFEST


def shard_files_on_disk(store: Path) -> list[str]:
    """Names of complete shard files on disk (temporary files excluded); ``store``: a space's
    folder."""
    d = Path(store) / SHARD_DIR
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.glob(SHARD_GLOB))


#: The folders :func:`atomic_write` writes into (a crash leaves its temp files only here).
WRITTEN_DIRS = ("", SHARD_DIR, MAP_DIR)


def temp_path(path: Path) -> Path:
    """Where :func:`atomic_write` writes ``path`` before renaming it into place.

    >>> temp_path(Path("s/manifest.json")).as_posix()
    's/.manifest.json.tmp'
    """
    return Path(path).with_name(f".{Path(path).name}.tmp")


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Make ``path`` by ``write(temp)``, then fsync and rename it into place, so a reader
    sees the old file or the whole new one; a crash leaves only a :func:`temp_files` entry.
    """
    path = Path(path)
    tmp = temp_path(path)
    tmp.unlink(missing_ok=True)
    try:
        write(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves nothing behind
        raise
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(fd)  # the rename itself
    finally:
        os.close(fd)
    return path


def temp_files(store: Path) -> list[Path]:
    """Temporary files a crashed writer may have left (every :func:`atomic_write`'s, in the
    store and in every space's folder)."""
    tops = [Path(store), *sorted((Path(store) / SPACES_DIR).glob("*+*"))]
    return sorted(p for top in tops for d in WRITTEN_DIRS
                  for p in (top / d).glob(temp_path(Path("*")).name) if p.is_file())
