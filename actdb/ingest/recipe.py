"""Which recipe and networks an ingest runs: the options asked, read against the store's
manifests (a new store takes them; one that exists is their default, and a space they
name but do not match is refused before a model is built).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from actdb.errors import StoreMismatch, UsageError
from actdb.models.classes import CLASS_INDEX_VERSION
from actdb.models.embed import Embedder, manifest_config, network_key
from actdb.options import EmbedConfig
from actdb.store.catalog.files import manifest_path
from actdb.store.manifest import Manifest, mismatch
from actdb.store.store import Store


def manifest_of(emb: Embedder) -> Manifest:
    """The manifest of a space embedded by ``emb``."""
    from actdb.version import __version__

    c = emb.config
    return Manifest(
        model=c.model, layer=c.layer, pool=c.pool, dim=emb.dim, image_size=c.image_size,
        resize=c.resize, precision=c.precision, weights=c.weights, preprocess=c.preprocess,
        weights_sha256=emb.weights_sha256, fingerprint=emb.fingerprint,
        class_index_version=CLASS_INDEX_VERSION, actdb_version=__version__,
    )


#: The recipe options of an ingest: a new store takes them (or EmbedConfig's defaults), a
#: store that exists is their default.
RECIPE = tuple(f.name for f in fields(EmbedConfig))


def store_recipe(store: str | Path, given: dict, layers=None) -> EmbedConfig:
    """The recipe of an ingest into ``store``: the one its manifest records (of the space of
    the model asked, else the default space), else EmbedConfig's defaults, with the options
    ``given`` (None: not given) over it. A given option that conflicts with the store's is
    refused, named; weights from another source are checked by their sha256 when the model
    is built. Another model or layer (``layers``) makes new spaces: a new model takes the
    store's pooling, resize, precision and (unless a file) weights, and its own input size.

    >>> store_recipe(store, {"pool": None}).weights
    'random:0'
    >>> store_recipe(store, {"image_size": 64})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    actdb.errors.StoreMismatch: image_size 64 conflicts with the store's 32; leave it out ...
    """
    given = {k: v for k, v in given.items() if v is not None}
    unknown = set(given) - set(RECIPE)
    if unknown:
        raise UsageError(f"unknown recipe option(s): {', '.join(sorted(unknown))}")
    check_values(given)
    if not manifest_path(Path(store)).exists():
        return EmbedConfig(**given)
    s = Store.open(Path(store))
    m = s.manifest
    preprocess = given.get("preprocess") or m.preprocess
    model = model_name(given["model"], preprocess) if "model" in given else m.model
    same = [s.in_space(r.name).manifest for r in s.spaces() if r.model == Path(model).name]
    if not same:  # a new model: new spaces
        carried = {k: getattr(m, k) for k in ("pool", "resize", "precision")}
        if not Path(m.weights).expanduser().is_file() and m.weights != "saved":
            carried["weights"] = m.weights
        return EmbedConfig(**{**carried, **given})
    wanted = layers or ([given["layer"]] if "layer" in given else [])
    m = next((x for x in same if x.layer in wanted), same[0])
    stored = asdict(manifest_config(m))
    conflicts = {k: f"{k} {v} conflicts with the store's {stored[k]}"
                 for k, v in sorted(given.items(), key=lambda kv: RECIPE.index(kv[0]))
                 if k not in ("weights", "layer") and not (k == "precision" and v == "auto")
                 and (model_name(v, preprocess) if k == "model" else v) != stored[k]}
    if conflicts:
        them = "it" if len(conflicts) == 1 else "them"
        raise StoreMismatch(f"{'; '.join(conflicts.values())}; leave {them} out to ingest "
                            "with the store's recipe, or use another store", param=conflicts)
    return EmbedConfig(**{**stored, **{k: v for k, v in given.items()
                                       if k in ("weights", "layer")}})


def check_values(recipe: dict) -> None:
    """UsageError for a recipe value no store can have (an unknown precision, resize or
    pool), named as unknown before any comparison with a store's recipe.

    >>> check_values({"precision": "fp16"})
    Traceback (most recent call last):
    actdb.errors.UsageError: precision 'fp16' is unknown; use one of auto, fp32, bf16
    """
    from actdb.images import RESIZE_METHODS
    from actdb.models.common import POOLS, PRECISIONS

    for name, allowed in (("precision", PRECISIONS), ("resize", RESIZE_METHODS),
                          ("pool", POOLS)):
        value = recipe.get(name)
        if value is not None and value not in allowed:
            raise UsageError(f"{name} {value!r} is unknown; use one of {', '.join(allowed)}",
                             param=name)


def model_name(model: str, preprocess: str | None) -> str:
    from actdb.models.registry import get_spec

    return get_spec(model, preprocess).name


@dataclass(frozen=True, kw_only=True)
class Network:
    """One forward pass: a network's recipe and the layers (each a space) it embeds."""

    recipe: EmbedConfig
    layers: list[str]


@dataclass(frozen=True, kw_only=True)
class IngestPlan:
    """What an ingest runs, decided from one look at the store (its spaces' manifests): the
    recipe asked (``auto`` precision resolved to the store's), the network new images go
    through (``first``: the default space's, with every layer the store keeps of it and the
    asked ones when it is the asked network) and every other network, whose spaces are
    filled after. ``spaces``: the store's spaces when planned (name -> manifest)."""

    recipe: EmbedConfig
    first: Network
    later: list[Network]
    spaces: dict[str, Manifest]

    @property
    def asked(self) -> Network:
        """The network of the asked recipe."""
        key = network_key(self.recipe)
        return next(n for n in (self.first, *self.later) if network_key(n.recipe) == key)

    def refuse_other_weights(self, engine) -> None:
        """StoreMismatch when a space of the asked network exists with other weights (a
        weights file from another source is the same weights when its sha256 is). The model
        is built for this only when such a space exists, as the run builds it (``engine``
        keeps it: the first network is not built twice)."""
        from actdb.models.registry import get_spec

        net = self.asked
        label = Path(get_spec(net.recipe.model, net.recipe.preprocess).name).name
        if not any(f"{label}/{x}" in self.spaces for x in net.layers):
            return
        for m in map(manifest_of, engine.prepare(net.recipe, net.layers)):
            if m.space_name in self.spaces:
                self.spaces[m.space_name].ensure_compatible(
                    m, f"the space {m.space_name} of the store")


def plan_ingest(store: Path, ec: EmbedConfig, layers: list[str]) -> IngestPlan:
    """The plan of an ingest of ``layers`` of ``ec``'s network into ``store``. A space of the
    store that the recipe names but does not match is refused here, before any model is
    built (a space it lacks is added)."""
    if not manifest_path(store).exists():
        return IngestPlan(recipe=ec, first=Network(recipe=ec, layers=list(layers)), later=[],
                          spaces={})
    s = Store.open(store)
    spaces = {r.name: s.in_space(r.name).manifest for r in s.spaces()}
    if ec.precision == "auto":
        ec = replace(ec, precision=s.manifest.precision)
    _refuse_mismatch(store, spaces, ec, layers)
    nets: dict[tuple, Network] = {}
    for m in spaces.values():
        nets.setdefault(network_key(m), Network(recipe=manifest_config(m), layers=[])
                        ).layers.append(m.layer)
    asked = nets.setdefault(network_key(ec), Network(recipe=ec, layers=[])).layers
    asked += [x for x in layers if x not in asked]
    first, *later = nets.values()
    return IngestPlan(recipe=ec, first=first, later=later, spaces=spaces)


def _refuse_mismatch(store: Path, spaces: dict[str, Manifest], ec: EmbedConfig,
                     layers: list[str]) -> None:
    """StoreMismatch for a space of the asked layers whose recipe is not ``ec``'s (what
    differs named), decided from the manifests alone."""
    from actdb.models.registry import get_spec

    spec = get_spec(ec.model, ec.preprocess)
    mine = {"model": spec.name, "pool": ec.pool, "resize": ec.resize,
            "image_size": ec.image_size or spec.native_size, "precision": ec.precision}
    for layer in layers:
        name = f"{Path(spec.name).name}/{layer}"
        if (m := spaces.get(name)) is None:
            continue
        diff = [f"{k}: {getattr(m, k)} != {v}" for k, v in mine.items()
                if v is not None and getattr(m, k) != v]
        if diff:
            raise mismatch(f"the space {name} of the store at {store}", diff)
