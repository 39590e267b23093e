"""``manifest.json``: how every vector in a store was made.

>>> m = Manifest(model="vgg19", layer="block5_conv4", pool="mean", dim=512, image_size=224,
...              resize="squash", precision="fp32", weights="random:0", weights_sha256="ab")
>>> Manifest.from_json(m.to_json()) == m
True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from actdb.errors import StoreError, StoreMismatch
from actdb.store.catalog.files import atomic_write, manifest_path
from actdb.store.catalog.schema import SpaceRow

#: 2: statistics tables created with the catalog, named queries, repairs; 3: spaces (a
#: store of format 2 is upgraded when first opened).
FORMAT_VERSION = 3
UPGRADABLE = (2,)
#: What to do about a mismatch, for the commands that take --store.
FIX = "use the store's settings or another --store"
#: Fields that must agree before vectors can share a store (or be compared at all).
COMPAT_FIELDS = ("model", "layer", "pool", "dim", "image_size", "resize", "precision",
                 "preprocess", "weights_sha256")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The store's embedding recipe and provenance."""

    model: str
    layer: str
    pool: str
    dim: int
    image_size: int
    resize: str
    precision: str
    weights: str
    weights_sha256: str
    preprocess: str | None = None  # a saved model's input scaling (registry models: own)
    fingerprint: str = ""
    class_index_version: str = ""
    actdb_version: str = ""
    format_version: int = FORMAT_VERSION
    created_at: str = field(default_factory=_now)

    @property
    def model_label(self) -> str:
        """The model by name: a saved model's file name, never a path of this machine."""
        return Path(self.model).name

    @property
    def space_name(self) -> str:
        """The name of the space these vectors make in a store: ``model/layer``."""
        return f"{self.model_label}/{self.layer}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def differences(self, other: Manifest) -> list[str]:
        """``field: ours != theirs`` for each compatibility field that differs."""
        out = []
        for name in COMPAT_FIELDS:
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                if name == "weights_sha256":
                    a, b = f"{self.weights} ({a[:12]})", f"{other.weights} ({b[:12]})"
                out.append(f"{name}: {a} != {b}")
        return out

    def ensure_compatible(self, other: Manifest, what: str = "the store",
                          fix: str = FIX) -> None:
        """Raise StoreMismatch naming every differing field."""
        diff = self.differences(other)
        if diff:
            raise mismatch(what, diff, fix)


def space_row(manifest: Manifest, *, folder: str = "", is_default: bool = True,
              position: int = 0) -> SpaceRow:
    """The ``spaces`` row of a space made with this recipe."""
    m = manifest
    return SpaceRow(name=m.space_name, folder=folder, is_default=is_default,
                    position=position, model=m.model_label, layer=m.layer, pool=m.pool,
                    dim=m.dim, fingerprint=m.fingerprint, image_size=m.image_size,
                    precision=m.precision, weights=m.weights)


def mismatch(what: str, diff: list[str], fix: str = FIX) -> StoreMismatch:
    """The one error for settings that differ from a store's (``diff``: "field: a != b")."""
    return StoreMismatch(f"{what} was built with different settings ({'; '.join(diff)}); "
                         f"{fix}")


def read_manifest(store: Path, upgrade: bool = False) -> Manifest:
    """The manifest in ``store`` (a store's or a space's folder); with ``upgrade``, also one
    of an earlier format this actdb upgrades."""
    path = manifest_path(store)
    try:
        m = Manifest.from_json(path.read_text())
    except FileNotFoundError:
        raise StoreError(
            f"no actdb store at {store} ({path.name} missing); run `actdb ingest ROOT "
            f"--store {store}` first, or pass --store / set ACTDB_STORE"
        ) from None
    except (ValueError, TypeError) as exc:
        raise StoreError(f"{path} is not a valid manifest: {exc}") from None
    if m.format_version != FORMAT_VERSION and not (upgrade and m.format_version in UPGRADABLE):
        raise StoreError(f"the store at {store} has format {m.format_version}; this actdb "
                         f"reads format {FORMAT_VERSION}: ingest into a new store")
    return m


def write_manifest(store: Path, manifest: Manifest) -> None:
    """Write atomically (temp file + rename)."""
    atomic_write(manifest_path(store), lambda tmp: tmp.write_text(manifest.to_json()))
