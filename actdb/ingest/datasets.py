"""Datasets actdb can fetch by name, for a first run without an ImageNet copy.

``imagenette`` (also ``imagenette-160``, ``imagenette-320``) is fast.ai's Imagenette: ten
ImageNet classes in ImageNet's wnid folders, ``train/`` and ``val/``. The archive comes through
Keras' own download cache (``$KERAS_HOME/datasets``, ``~/.keras/datasets``), is verified
against the md5 its publishers recorded before anything is extracted, and is extracted safely
(no path may leave the folder). A URL can be overridden for a mirror or a test with
``ACTDB_DATASET_URL_<NAME>`` (``IMAGENETTE_160``), which must carry its checksum the way pip
writes it: ``https://host/imagenette2-160.tgz#md5=...``.

>>> sorted(DATASETS)
['imagenette', 'imagenette-160', 'imagenette-320']
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from actdb.errors import DatasetError

BASE = "https://s3.amazonaws.com/fast-ai-imageclas"


@dataclass(frozen=True)
class Remote:
    """An archive and the md5 checksums its publishers recorded for it (the archives have been
    republished: fastai's data/checks.txt, then torchvision's Imagenette, each recorded the
    archive of its day)."""

    url: str
    md5: tuple[str, ...]

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("#")[0]

    @property
    def folder(self) -> str:
        return self.filename.removesuffix(".tgz").removesuffix(".tar.gz")


DATASETS = {
    "imagenette": Remote(f"{BASE}/imagenette2.tgz", (
        "2c774ecb40005b35d7937d50f5d42336", "fe2fc210e6bb7c5664d602c3cd71e612")),
    "imagenette-160": Remote(f"{BASE}/imagenette2-160.tgz", (
        "c475f8f7617a200ba35b9facc48443c3", "e793b78cc4c9e9a4ccc0c1155377a412")),
    "imagenette-320": Remote(f"{BASE}/imagenette2-320.tgz", (
        "1f1f74f133caff120e575856659b87a2", "3df6f0d01a2c9592104656642f5e78a3")),
}


def remote(name: str) -> Remote:
    """The archive of a named dataset (an ``ACTDB_DATASET_URL_...`` override included)."""
    r = DATASETS[name]
    override = os.environ.get("ACTDB_DATASET_URL_" + name.upper().replace("-", "_"))
    if override is None:
        return r
    url, _, fragment = override.partition("#md5=")
    if not fragment:
        raise DatasetError(f"an overridden URL for {name} must carry its checksum: "
                           f"{url}#md5=<md5 of the archive>")
    return Remote(url, (fragment.strip().lower(),))


def md5_of(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - the publishers record md5
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(name: str) -> Path:
    """The dataset's root folder: downloaded (through Keras' cache), verified and extracted
    when missing; its ``train/`` and ``val/`` folders are ready to ingest."""
    from actdb import heavy
    from actdb.models.registry import keras_cache_dir

    r = remote(name)
    cache = keras_cache_dir().parent / "datasets"
    root = cache / r.folder
    if (root / "train").is_dir():
        return root
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Keras prints "Downloading data from"
            archive = Path(heavy.keras().utils.get_file(r.filename, r.url,
                                                        cache_subdir="datasets"))
    except Exception as exc:  # Keras raises a bare Exception on a failed download
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(
            f"cannot download {name} ({reason[:160]}); put {r.filename} (md5 {r.md5[0]}) in "
            f"{cache} and run the same command again") from None
    got = md5_of(archive)
    if got not in r.md5:
        archive.unlink(missing_ok=True)  # the next try downloads it again
        raise DatasetError(f"{r.filename} has md5 {got}, not the published {r.md5[0]}: "
                           "refused (deleted); run the same command again")
    _extract(archive, cache)
    if not (root / "train").is_dir():
        raise DatasetError(f"{r.filename} did not hold {r.folder}/train/; is it {name}?")
    return root


def _extract(archive: Path, into: Path) -> None:
    """Extract a tar archive; members that would land outside ``into`` are refused."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise DatasetError(f"cannot extract {archive.name}: {exc}") from None
