"""The atlas as a static site: ``index.html`` (every channel's picture with its predicted
class and agreement, filter and sort) and one page per channel at a stable address,
``<model>/<layer>/<channel>.html``. Pictures, thumbnails and heatmaps are files beside the
pages (relative links only: no network, readable offline); the look is the report's.
``actdb serve`` shows the copy kept in the store at ``/atlas``.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from actdb.atlas import heatmap
from actdb.models.embed import store_embedder
from actdb.store.catalog import derived, files, reads
from actdb.viz.report import templates
from actdb.viz.thumbs import thumbnail

SHOWN = 6  # top examples with heatmaps on a channel page


def page_path(model: str, layer: str, channel: int) -> str:
    """A channel page's address inside the site (``model``: the atlas rows' model label)."""
    return f"{model}/{layer}/{channel}.html"


def _thumbs(store, folder: Path, ids: set[int], size: int = 112) -> dict[int, str]:
    """Thumbnails of stored images as files (made once), by id -> site-relative path."""
    out = {}
    (folder / "thumbs").mkdir(parents=True, exist_ok=True)
    with store.reader() as con:
        meta = reads.image_meta(con, sorted(ids), missing_ok=True)
    for i, root, path in zip(meta["image_id"], meta["root"], meta["path"], strict=True):
        rel = f"thumbs/{int(i)}.jpg"
        target = folder / rel
        if not target.exists():
            source = Path(root) / path if root is not None else io.BytesIO(b"")  # grey tile
            target.write_bytes(thumbnail(source, size))
        out[int(i)] = rel
    return out


def _heatmaps(store, folder: Path, rows: pd.DataFrame, meta: dict) -> dict:
    """Per channel, the top examples' heatmaps (and receptive-field crops): channel ->
    [{image_id, heat, crop}]."""
    emb = store_embedder(store.manifest)  # Keras: heatmaps need the spatial activations
    rf = heatmap.receptive_field(emb.features, emb.config.layer)
    wanted = {int(r.channel): r.examples["top"][:SHOWN] for r in rows.itertuples()}
    ids = sorted({i for v in wanted.values() for i in v})
    if not ids:
        return {}
    paths = {i: Path(meta[i][0]) / meta[i][1] for i in ids}
    chans = sorted(wanted)
    maps = heatmap.channel_maps(emb, [paths[i] for i in ids], chans)
    pos = {i: n for n, i in enumerate(ids)}
    out = {}
    for ch, examples in wanted.items():
        d = folder / "heat" / emb.config.layer
        d.mkdir(parents=True, exist_ok=True)
        items = []
        for i in examples:
            heat = maps[pos[i], chans.index(ch)]
            rel = f"heat/{emb.config.layer}/{ch}-{i}.jpg"
            (folder / rel).write_bytes(heatmap.overlay(paths[i], heat))
            item = {"image_id": i, "heat": rel, "crop": None}
            if rf is not None:
                crel = f"heat/{emb.config.layer}/{ch}-{i}-rf.jpg"
                (folder / crel).write_bytes(heatmap.crop(paths[i], heat, rf,
                                                         emb.config.image_size))
                item["crop"] = crel
            items.append(item)
        out[ch] = items
    return out


def build_site(store, folder: Path, heatmaps: bool = True) -> Path:
    """Write the site for every channel in the store's atlas; returns its index."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with store.reader() as con:
        rows = derived.channels(con)
    env = templates()
    main = rows[~rows.variant.astype(bool)] if len(rows) else rows
    variants = rows[rows.variant.astype(bool)] if len(rows) else rows
    ids: set[int] = set()
    for r in main.itertuples():
        ex = r.examples
        ids.update(n["image_id"] for n in r.neighbours)
        ids.update(ex["top"] + ex["bottom"] + [i for q in ex["quantiles"].values() for i in q])
    thumbs = _thumbs(store, folder, ids)
    with store.reader() as con:
        m = reads.image_meta(con, sorted(ids), missing_ok=True)
    meta = {int(i): (root, path, name) for i, root, path, name in zip(
        m["image_id"], m["root"], m["path"], m["class_name"], strict=True)}
    heat = _heatmaps(store, folder, main, meta) if heatmaps and len(main) else {}
    rf = (heatmap.receptive_field(store_embedder(store.manifest).features, store.manifest.layer)
          if heatmaps else None)
    tiles = []
    for r in main.itertuples():
        picture = f"pictures/{r.picture}"
        (folder / picture).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store.path / files.ATLAS_DIR / r.picture, folder / picture)
        for v in variants[(variants.layer == r.layer) & (variants.channel == r.channel)
                          ].itertuples():
            target = folder / "pictures" / v.picture
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(store.path / files.ATLAS_DIR / v.picture, target)
        page = page_path(r.model, r.layer, r.channel)
        up = "../" * page.count("/")
        ex = r.examples

        def tile(i, extra="", up=up):
            name = meta.get(i, (None, None, None))[2]
            return {"image_id": i, "src": up + thumbs[i], "class_name": name, "extra": extra}

        sql = (f"SELECT * FROM channels WHERE layer = '{r.layer}' AND channel = {r.channel}")
        context = {
            "r": r, "up": up, "picture": up + picture,
            "variants": [{"src": up + "pictures/" + v.picture, "objective": v.objective,
                          "seed": v.seed, "value": v.objective_value}
                         for v in variants[(variants.layer == r.layer)
                                           & (variants.channel == r.channel)].itertuples()],
            "predictions": r.predictions,
            "neighbours": [tile(n["image_id"], f"d={n['distance']:.4g}")
                           for n in r.neighbours],
            "top": [tile(i) for i in ex["top"]], "bottom": [tile(i) for i in ex["bottom"]],
            "quantiles": {q: [tile(i) for i in v] for q, v in ex["quantiles"].items()},
            "class_means": ex.get("class_means", []),
            "heat": [{**h, "heat": up + h["heat"], "crop": up + h["crop"] if h["crop"] else None,
                      "class_name": meta[h["image_id"]][2]} for h in heat.get(r.channel, [])],
            "rf": rf, "sql": sql, "sql_link": "/?sql=" + quote(sql),
        }
        out = folder / page
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(env.get_template("atlas_channel.html.j2").render(**context),
                       encoding="utf-8")
        tiles.append({"channel": int(r.channel), "layer": r.layer, "page": page,
                      "picture": picture, "predicted": r.predicted_class,
                      "prob": _prob(r),
                      "centroid": r.nearest_centroid_class, "activation": r.top_activation_class,
                      "agree_all": bool(r.agree_all),
                      "agree_any": bool(r.agree_predicted_centroid or r.agree_centroid_activation),
                      "objective": float(r.objective_value)})
    index = folder / "index.html"
    man = store.manifest
    index.write_text(env.get_template("atlas_index.html.j2").render(
        m=man, tiles=tiles, data=json.dumps(tiles).replace("</", "<\\/")), encoding="utf-8")
    return index


def _prob(row) -> float | None:
    """The space's own model's top-1 probability, when it was among the models asked (None,
    never NaN: the page's data is strict JSON)."""
    p = getattr(row, f"prob_{row.model}", None)
    return float(p) if p is not None and pd.notna(p) else None
