"""Exports to the tools people already use.

- ``projector``: the Embedding Projector's files (``tensors.tsv``, ``metadata.tsv``, a sprite
  of thumbnails), with TensorBoard's ``projector_config.pbtxt`` and the standalone
  projector's ``projector_config.json``; a stratified sample within its limits (at most
  100,000 points; the sprite at most 8192 px a side);
- ``atlas``: one Parquet file that Apple's Embedding Atlas opens with
  ``embedding-atlas FILE --x x --y y --image thumbnail``: map coordinates, class, path, and
  a thumbnail in the form its docs describe (a struct of JPEG ``bytes`` and a ``path``);
  categorical columns stay under its 256-category limit; placed queries are rows with
  negative ``image_id`` (-1, -2, ...), so the column stays an integer one;
- ``parquet``: every image column joined with the vector (``vec``, fixed-size float32 lists,
  as in the shards and SQL), for pandas, polars or Spark.

No export holds a path of the user's machine other than the images' ``root`` column of the
``parquet`` export: image paths are relative to their root, a query is named by its file.

>>> from actdb.store.store import Store
>>> s = Store.open(store)
>>> r = export_parquet(s, s.vectors()[0][:4], tmp / "v.parquet")
>>> r.rows, r.files
(4, ['v.parquet'])
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from actdb.store.catalog import reads
from actdb.viz.thumbs import thumbnails

TARGETS = ("projector", "atlas", "parquet")
PROJECTOR_MAX_POINTS = 100_000
SPRITE_MAX_PX = 8192
#: Embedding Atlas colours by a categorical column only under 256 categories.
ATLAS_MAX_CATEGORIES = 255
#: TensorBoard Projector colours by a column only under 50 distinct values.
PROJECTOR_MAX_COLOURS = 49
CHUNK = 65_536
Stage = Callable[[str], None]


@dataclass
class ExportResult:
    """What was written: where, how many rows, which files, a note on any sampling, and how
    to open it in its tool."""

    to: str
    path: Path
    rows: int
    files: list[str] = field(default_factory=list)
    note: str | None = None
    open_with: str | None = None
    space: str | None = None  # whose vectors (and map coordinates) were written


def _url(base_url: str | None, file: str) -> str:
    """Where the standalone projector finds ``file`` of a folder served at ``base_url``."""
    return f"{base_url.rstrip('/')}/{file}" if base_url else file


def stratified(store, ids: np.ndarray, per_class: int | None, cap: int | None, seed: int
               ) -> tuple[np.ndarray, str | None]:
    """A seeded per-class sample of ``ids`` (at most ``per_class`` a class, ``cap`` in all,
    every class kept), sorted; and a note when it left images out."""
    ids = np.sort(np.asarray(ids, np.int64))
    with store.reader() as con:
        meta = reads.image_meta(con, ids)
    keys = np.array([s or c or "" for s, c in zip(meta["synset"], meta["class_name"],
                                                   strict=True)], dtype=object)
    groups = pd.Series(np.arange(len(ids))).groupby(keys).indices
    limit = per_class
    if cap is not None and len(ids) > cap:
        fair = max(1, cap // max(len(groups), 1))
        limit = fair if limit is None else min(limit, fair)
    if limit is None:
        return ids, None
    rng = np.random.default_rng(seed)
    keep = [idx if len(idx) <= limit else rng.choice(idx, limit, replace=False)
            for idx in groups.values()]
    out = ids[np.sort(np.concatenate(keep))] if keep else ids[:0]
    if cap is not None and len(out) > cap:
        out = np.sort(rng.choice(out, cap, replace=False))
    note = None
    if len(out) < len(ids):
        note = (f"a stratified sample: {len(out)} of {len(ids)} images, at most {limit} a "
                f"class, seed {seed}")
    return out, note


def plain_strings(t):
    """Arrow ``large_string`` columns (pandas' default) as ``string``: what every reader
    expects."""
    import pyarrow as pa

    schema = pa.schema([f.with_type(pa.string()) if f.type == pa.large_string() else f
                        for f in t.schema], metadata=t.schema.metadata)
    return t.cast(schema)


def _meta_frame(store, ids: np.ndarray) -> pd.DataFrame:
    with store.reader() as con:
        return pd.DataFrame(reads.image_meta(con, ids))


def top_categories(names: pd.Series, first: list[str] | None, limit: int) -> pd.Series:
    """Class names as a categorical of at most ``limit`` values: ``first`` (e.g. the query's
    classes), then the largest classes; the rest "other"."""
    counts = names.value_counts()
    order = [c for c in (first or []) if c in counts.index]
    order += [c for c in counts.index if c not in order]
    keep = set(order[:limit - 1]) if len(order) > limit else set(order)
    return names.where(names.isin(keep), "other").fillna("other")


def _full_paths(meta: pd.DataFrame) -> list[Path | None]:
    return [Path(r) / p if r is not None and p is not None else None
            for r, p in zip(meta["root"], meta["path"], strict=True)]


def export_parquet(store, ids: np.ndarray, path: str | Path, note: str | None = None,
                   stage: Stage | None = None) -> ExportResult:
    """Vectors and metadata joined, written in chunks (the store may exceed memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    say = stage or (lambda _: None)
    path = Path(path)
    ids = np.sort(np.asarray(ids, np.int64))
    dim = store.manifest.dim
    writer = None
    try:
        for start in range(0, max(len(ids), 1), CHUNK):
            part = ids[start:start + CHUNK]
            say(f"rows {start + len(part)} of {len(ids)}")
            with store.reader() as con:
                meta = reads.images_by_id(con, part)
            _, vecs = store.vectors(part) if len(part) else (part, np.zeros((0, dim), "f4"))
            t = plain_strings(pa.Table.from_pandas(meta, preserve_index=False)).append_column(
                "vec", pa.FixedSizeListArray.from_arrays(
                    pa.array(np.asarray(vecs, np.float32).ravel()), dim))
            if writer is None:
                m = store.manifest
                t = t.replace_schema_metadata({"actdb": (
                    f"{m.model_label} {m.layer}, {m.pool}-pooled, {dim}-d, "
                    f"weights {Path(m.weights).name}"), "actdb_space": store.space.name})
                writer = pq.ParquetWriter(path, t.schema)
            writer.write_table(t.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    return ExportResult("parquet", path, len(ids), [path.name], note, space=store.space.name)


def export_projector(store, ids: np.ndarray, folder: str | Path, note: str | None = None,
                     first_classes: list[str] | None = None, base_url: str | None = None,
                     stage: Stage | None = None) -> ExportResult:
    """The Embedding Projector's files for these images (at most 100,000). The standalone
    projector fetches the JSON config's paths as they are written, so ``base_url`` (where
    the folder will be served) prefixes them; without it they are the bare file names."""
    from PIL import Image

    say = stage or (lambda _: None)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.sort(np.asarray(ids, np.int64))
    if len(ids) > PROJECTOR_MAX_POINTS:
        raise ValueError(f"{len(ids)} points: the Projector takes at most "
                         f"{PROJECTOR_MAX_POINTS}")
    _, vecs = store.vectors(ids)
    meta = _meta_frame(store, ids)
    say(f"tensors.tsv ({len(ids)} x {vecs.shape[1]})")
    np.savetxt(folder / "tensors.tsv", vecs, delimiter="\t", fmt="%.6g")
    names = meta["class_name"].astype(object).where(meta["class_name"].notna(), "")
    md = pd.DataFrame({"image_id": meta["image_id"], "class_name": names,
                       "class": top_categories(pd.Series(names).replace("", None),
                                               first_classes, PROJECTOR_MAX_COLOURS),
                       "split": meta["split"].fillna(""), "path": meta["path"].fillna("")})
    for c in ("class_name", "class", "path"):  # a tab or newline would break the TSV
        md[c] = md[c].astype(str).str.replace(r"[\t\n\r]", " ", regex=True)
    md.to_csv(folder / "metadata.tsv", sep="\t", index=False, lineterminator="\n")
    per_row = max(1, math.ceil(math.sqrt(len(ids))))
    size = max(8, min(64, SPRITE_MAX_PX // per_row))
    say(f"sprite.png ({per_row} x {per_row} thumbnails of {size} px)")
    sprite = Image.new("RGB", (per_row * size, per_row * size), (255, 255, 255))
    for i, data in enumerate(thumbnails(_full_paths(meta), size)):
        with Image.open(io.BytesIO(data)) as im:
            tile = im.convert("RGB").resize((size, size))
        sprite.paste(tile, ((i % per_row) * size, (i // per_row) * size))
    sprite.save(folder / "sprite.png")
    m = store.manifest
    (folder / "projector_config.pbtxt").write_text(
        "embeddings {\n"
        f'  tensor_name: "actdb {m.model_label} {m.layer}"\n'
        '  tensor_path: "tensors.tsv"\n'
        '  metadata_path: "metadata.tsv"\n'
        "  sprite {\n"
        '    image_path: "sprite.png"\n'
        f"    single_image_dim: {size}\n"
        f"    single_image_dim: {size}\n"
        "  }\n"
        "}\n", encoding="utf-8")
    (folder / "projector_config.json").write_text(json.dumps(projector_json(
        f"actdb {m.model_label} {m.layer}", vecs.shape, size, base_url), indent=2) + "\n",
        encoding="utf-8")
    files = ["tensors.tsv", "metadata.tsv", "sprite.png", "projector_config.pbtxt",
             "projector_config.json"]
    how = (f"or https://projector.tensorflow.org/?config={_url(base_url, files[-1])}"
           if base_url else "or serve the folder and export again with --base-url for "
           "projector.tensorflow.org")
    return ExportResult("projector", folder, len(ids), files, note,
                        f"tensorboard --logdir {folder} (pip install tensorboard), {how}",
                        space=store.space.name)


def projector_json(name: str, shape: tuple[int, int], tile: int,
                   base_url: str | None = None) -> dict:
    """The standalone projector's config (its ``ProjectorConfig``: ``?config=URL``).

    >>> projector_json("t", (18, 512), 32, "https://x.org/p")["embeddings"][0]["sprite"]
    {'imagePath': 'https://x.org/p/sprite.png', 'singleImageDim': [32, 32]}
    """
    return {"embeddings": [{
        "tensorName": name, "tensorShape": [int(shape[0]), int(shape[1])],
        "tensorPath": _url(base_url, "tensors.tsv"), "metadataPath": _url(base_url, "metadata.tsv"),
        "sprite": {"imagePath": _url(base_url, "sprite.png"), "singleImageDim": [tile, tile]}}],
        "modelCheckpointPath": name}


def export_atlas(store, path: str | Path, queries: list, *, stored_map=None,
                 ids: np.ndarray | None = None, per_class: int | None = None,
                 method: str = "auto", seed: int = 0, first_classes: list[str] | None = None,
                 stage: Stage | None = None) -> ExportResult:
    """The Embedding Atlas export: the points of ``stored_map``, or (a selection no stored map
    describes) a per-class sample of ``ids`` projected for this export, with the query
    vectors ``queries`` placed into the same map; ``first_classes`` (the first query's
    nearest classes) keep their own colour."""
    from actdb.viz.maps import DEFAULT_POINTS
    from actdb.viz.projection import AUTO, ProjectionConfig, Projector, auto_method

    note = None
    vecs = np.stack([q.vec for q in queries]) if queries else None
    if stored_map is not None:
        points = stored_map.points[["image_id", "x", "y"]]
        placed = stored_map.place(vecs) if queries else np.zeros((0, 2))
    else:
        ids, note = stratified(store, ids, per_class, DEFAULT_POINTS, seed)
        if method == AUTO:
            method = auto_method(len(ids))
        proj = Projector(ProjectionConfig(method=method, seed=seed))
        xy = proj.fit(store.vectors(ids)[1], stage)
        points = pd.DataFrame({"image_id": ids, "x": xy[:, 0], "y": xy[:, 1]})
        placed = proj.transform(vecs) if queries else np.zeros((0, 2))
    points = points.merge(_meta_frame(store, points.image_id.to_numpy()), on="image_id")
    placed_queries = pd.DataFrame({"name": [q.name for q in queries], "x": placed[:, 0],
                                   "y": placed[:, 1], "source": [str(q.source) for q in queries]})
    return _write_atlas(points, path, placed_queries, note, first_classes, stage=stage,
                        space=store.space.name)


def _write_atlas(points: pd.DataFrame, path: str | Path, queries: pd.DataFrame | None = None,
                 note: str | None = None, first_classes: list[str] | None = None,
                 thumb: int = 64, stage: Stage | None = None, space: str | None = None
                 ) -> ExportResult:
    """An Embedding Atlas Parquet of map ``points`` (image_id, x, y, class_name, split, path,
    root) and placed ``queries`` (name, x, y, source), the queries keyed -1, -2, ...; the
    ``space`` whose vectors were mapped is in the file's metadata (``actdb_space``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    say = stage or (lambda _: None)
    path = Path(path)
    say(f"{len(points)} thumbnails of {thumb} px")
    rows = pd.DataFrame({
        "image_id": points["image_id"].astype("int64"), "x": points["x"].astype("float32"),
        "y": points["y"].astype("float32"), "class_name": points["class_name"],
        "split": points["split"], "path": points["path"], "is_query": False,
        "thumb_path": points["path"]})
    images = thumbnails(_full_paths(points), thumb)
    if queries is not None and len(queries):
        src = [Path(s) if isinstance(s, str) and Path(s).is_file() else None
               for s in queries["source"]]
        q = pd.DataFrame({"image_id": -np.arange(1, len(queries) + 1, dtype=np.int64),
                          "x": queries["x"].astype("float32"),
                          "y": queries["y"].astype("float32"),
                          "class_name": "query: " + queries["name"].astype(str),
                          "split": "query", "path": [s.name if s else "" for s in src],
                          "is_query": True, "thumb_path": queries["name"].astype(str) + ".jpg"})
        rows = pd.concat([rows, q], ignore_index=True)
        images += thumbnails(src, thumb)
    first = [c for c in rows.class_name[rows.is_query]] + list(first_classes or [])
    rows["class"] = top_categories(rows["class_name"], first, ATLAS_MAX_CATEGORIES)
    t = plain_strings(pa.Table.from_pandas(rows.drop(columns=["thumb_path"]),
                                           preserve_index=False))
    t = t.append_column("thumbnail", pa.StructArray.from_arrays(
        [pa.array(images, pa.binary()), pa.array(rows["thumb_path"].astype(str).tolist())],
        names=["bytes", "path"]))
    meta = {"actdb": f"open with: embedding-atlas {path.name} --x x --y y --image thumbnail",
            **({"actdb_space": space} if space else {})}
    pq.write_table(t.replace_schema_metadata(meta), path)
    return ExportResult("atlas", path, t.num_rows, [path.name], note,
                        f"embedding-atlas {path} --x x --y y --image thumbnail", space=space)
