"""``actdb atlas``: for every channel of the store's layer, a feature visualisation (many
channels optimised as one batch), what the networks call it (``predict``), where it lands
among the stored images (``nearest``, ``centroids``), what excites the channel in the data
(top, bottom and quantile examples, the class with the highest mean), and whether these agree.
Each batch of channels is committed to the catalog's ``channels`` table when it is done, so a
killed run continues where it stopped. Where a picture lands is asked through ``lands``, a
callable the face supplies (the space's nearest images and centroids), never the face itself.

>>> parse_channels("0-3,17,2", 512)
[0, 1, 2, 3, 17]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from actdb.errors import UsageError
from actdb.options import AtlasConfig
from actdb.store.catalog import derived, files, reads, writes
from actdb.store.writer import StoreWriter

MODEL_COLUMNS = ("vgg19", "vgg16", "resnet50")  # the channels table's per-model columns
Progress = Callable[[int, int], None]
#: (picture paths, query names) -> (NearestResult, centroids DataFrame): where they land.
Lands = Callable[[list, list], tuple]


@dataclass
class AtlasResult:
    """What a run did: pictures made now, channels already there, the site written."""

    made: int
    skipped: int
    channels: list[int]
    site: Path | None
    seconds: float

    def to_dict(self) -> dict:
        return {"made": self.made, "skipped": self.skipped, "channels": len(self.channels),
                "site": str(self.site) if self.site else None, "seconds": self.seconds}


def parse_channels(text: str | None, dim: int) -> list[int]:
    """``"0-511"``, ``"4,17,30-40"`` (or None: all) -> sorted channel numbers."""
    if not text:
        return list(range(dim))
    out = set()
    for part in str(text).split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            a, b = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise UsageError(f"channels {text!r}: use numbers and ranges, e.g. 0-511 or "
                             "4,17,30-40") from None
        if not 0 <= a <= b < dim:
            raise UsageError(f"channels {part!r} out of range: the layer has channels "
                             f"0-{dim - 1}")
        out.update(range(a, b + 1))
    return sorted(out)


def predict_weights(model: str, weights: str) -> tuple[str, dict[str, str]]:
    """The classifiers' weights: a weights file is the store's model's own; ``imagenet`` and
    ``random:SEED`` apply to every model (a saved model's own weights: imagenet for them)."""
    if weights == "saved":
        return "imagenet", {}
    if weights == "imagenet" or weights.startswith("random:"):
        return weights, {}
    return "imagenet", {model: weights}


@dataclass
class ChannelData:
    """What excites each channel in the store: example image ids and the class means."""

    top: dict[int, list[int]]
    bottom: dict[int, list[int]]
    quantiles: dict[int, dict[str, list[int]]]
    top_class: dict[int, tuple[str, str]]  # channel -> (class_key, class_name)
    class_means: dict[int, list[dict]]  # channel -> the five classes with the highest mean


def channel_data(store, channels: list[int], k: int) -> ChannelData:
    """One pass over the stored vectors for every channel asked."""
    ids, vecs = store.vectors()
    with store.reader() as con:
        meta = reads.image_meta(con, ids)
    keys = np.array([s or c for s, c in zip(meta["synset"], meta["class_name"], strict=True)],
                    dtype=object)
    names = dict(zip(keys, meta["class_name"], strict=True))
    labelled = np.array([x is not None for x in keys])
    cols = vecs[:, channels].astype(np.float64)
    means = pd.DataFrame(cols[labelled], columns=channels).groupby(keys[labelled]).mean()
    out = ChannelData({}, {}, {}, {}, {})
    for j, ch in enumerate(channels):
        v = cols[:, j]
        order = np.argsort(-v, kind="stable")
        out.top[ch] = ids[order[:k]].tolist()
        out.bottom[ch] = ids[order[::-1][:k]].tolist()
        qs = {}
        for q in (0.25, 0.5, 0.75):  # the images whose value is nearest each quantile
            target = np.quantile(v, q)
            qs[f"q{int(q * 100)}"] = ids[np.argsort(np.abs(v - target), kind="stable")[
                :max(1, k // 4)]].tolist()
        out.quantiles[ch] = qs
        if len(means):
            col = means[ch].sort_values(ascending=False, kind="stable")
            out.top_class[ch] = (col.index[0], names[col.index[0]])
            out.class_means[ch] = [{"class_name": names[key], "class_key": key,
                                    "mean": float(val)} for key, val in col.head(5).items()]
    return out


def _analyse(store, lands: Lands, results, jobs_cfg, predictor, data: ChannelData,
             cfg: AtlasConfig, variant: bool) -> pd.DataFrame:
    """The channels-table rows of a batch of finished pictures."""
    m = store.manifest
    paths = [r.image for r in results]
    names = [f"atlas:{m.layer}:{r.config['channel']}:{jobs_cfg.objective}:{jobs_cfg.seed}"
             for r in results]
    near, cents = lands(paths, names)
    preds = pd.DataFrame(predictor(paths))
    rows = []
    for i, (res, ans) in enumerate(zip(results, near.answers, strict=True)):
        ch = int(res.config["channel"])
        mine = preds.iloc[[i + len(results) * j for j in range(len(cfg.models))]]
        tops = {r.model: r.top for r in mine.itertuples()}
        own = tops.get(m.model) or tops[mine.model.iloc[0]]
        vote = ans.vote()
        c = cents[cents["query"] == names[i]].iloc[0]
        c_key = c.synset or c.class_name
        t_key, t_name = data.top_class.get(ch, (None, None))
        row = {"model": m.model_label, "layer": m.layer, "channel": ch, "recipe": cfg.recipe,
               "objective": jobs_cfg.objective, "seed": jobs_cfg.seed, "steps": jobs_cfg.steps,
               "size": cfg.image_size, "variant": variant,
               "start_activation": res.start_activation, "objective_value": res.final_activation,
               "picture": Path(res.image).relative_to(store.path / files.ATLAS_DIR).as_posix(),
               "predicted_class": own[0]["class_name"], "predicted_key": own[0]["wnid"],
               "predictions": json.dumps(tops),
               "vote_class": vote[0]["class_name"] if vote else None,
               "vote_share": vote[0]["share"] if vote else None,
               "nearest_centroid_class": c.class_name, "nearest_centroid_key": c_key,
               "centroid_distance": float(c.distance), "inside_p95": bool(c.inside),
               "nn_distance": ans.context.get("nn_distance"),
               "nn_percentile": ans.context.get("nn_percentile"),
               "top_activation_class": t_name, "top_activation_key": t_key,
               "agree_predicted_centroid": own[0]["wnid"] == c_key,
               "agree_centroid_activation": c_key == t_key,
               "agree_all": own[0]["wnid"] == c_key == t_key,
               "neighbours": json.dumps([{"image_id": n["image_id"], "distance": n["distance"],
                                          "class_name": n["class_name"]}
                                         for n in ans.neighbor_rows(root=False)]),
               "examples": json.dumps({"top": data.top.get(ch, []),
                                       "bottom": data.bottom.get(ch, []),
                                       "quantiles": data.quantiles.get(ch, {}),
                                       "class_means": data.class_means.get(ch, [])})}
        for name in MODEL_COLUMNS:
            top = tops.get(name)
            row[f"predicted_{name}"] = top[0]["class_name"] if top else None
            row[f"prob_{name}"] = top[0]["probability"] if top else None
        rows.append(row)
    return pd.DataFrame(rows)


def run_atlas(store, cfg: AtlasConfig, lands: Lands, progress: Progress | None = None,
              stage: Callable[[str], None] | None = None) -> AtlasResult:
    """Make (or continue) the atlas of the ``store``'s space (a Store); then write its
    site. ``lands(paths, names)``: where pictures land in that space."""
    from actdb.featvis.dream import dream_batch, dream_embedder, resolved
    from actdb.models.common import is_torch_model
    from actdb.models.embed import resolve_precision
    from actdb.models.predict import PredictConfig, Predictor
    from actdb.options import DreamConfig

    t0 = time.perf_counter()
    say = stage or (lambda _: None)
    if is_torch_model(store.manifest.model):  # its heatmaps read a Keras model's graph
        raise UsageError(f"the atlas runs on Keras spaces; {store.manifest.space_name} is a "
                         "PyTorch network's (dream and nearest work on it)", param="space")
    if cfg.batch < 1 or cfg.k < 1 or cfg.examples < 1:
        raise UsageError("batch, k and examples must be at least 1")
    m = store.manifest
    channels = sorted(set(cfg.channels)) if cfg.channels else list(range(m.dim))
    parse_channels(",".join(map(str, channels)), m.dim)  # range check
    base = resolved(DreamConfig(model=m.model, layer=m.layer, weights=m.weights,
                                preprocess=m.preprocess, image_size=cfg.image_size,
                                steps=cfg.steps, seed=cfg.seed, recipe=cfg.recipe,
                                precision=resolve_precision(cfg.precision)))
    jobs = [(replace(base, objective="channel"), False)]
    if cfg.variants:  # how stable is the picture: another objective, another seed
        jobs += [(replace(base, objective="neuron"), True),
                 (replace(base, seed=base.seed + 1), True)]
    with store.reader() as con:
        todo = [(job, variant, [ch for ch in channels if ch not in derived.channels_done(
            con, m.model_label, m.layer, job.recipe, job.objective, job.seed, job.steps,
            cfg.image_size)])
            for job, variant in jobs]
    total = len(channels) * len(jobs)
    remaining = sum(len(t[2]) for t in todo)
    done = total - remaining
    if progress:
        progress(done, total)
    if remaining:
        say("examples of every channel")
        data = channel_data(store, channels, cfg.examples)
        default, per_model = predict_weights(m.model, m.weights)
        predictor = Predictor(PredictConfig(models=tuple(cfg.models), weights=per_model,
                                            default_weights=default))
        emb = dream_embedder(base)
        for job, variant, chans in todo:
            for start in range(0, len(chans), cfg.batch):
                part = chans[start:start + cfg.batch]
                outs = [files.atlas_picture(store.path, m.model_label, m.layer, job.recipe,
                                            job.objective, job.seed, ch) for ch in part]
                results = dream_batch(job, part, outs, emb=emb)
                rows = _analyse(store, lands, results, job, predictor, data, cfg, variant)
                with StoreWriter(store.path) as w, w.connect() as con:
                    writes.put_channels(con, rows)
                done += len(part)
                if progress:
                    progress(done, total)
    from actdb.atlas.site import build_site

    say("the site")
    site = build_site(store, Path(cfg.output) if cfg.output else files.atlas_site(store.path),
                      heatmaps=cfg.heatmaps)
    return AtlasResult(remaining, total - remaining, channels, site,
                       round(time.perf_counter() - t0, 3))
