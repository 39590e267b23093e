"""actdb: an activation database for studying what convolutional networks have learned.

>>> import actdb
>>> db = actdb.open(store)
>>> db.space().nearest("id:0", k=3).classes.class_name.tolist()
['tench']

:func:`open` returns a :class:`~actdb.database.Database` (the store's questions) and its
``space(name)`` a :class:`~actdb.space.Space` (one space's): their methods do everything the
``actdb`` command and the HTTP service do; :func:`merge`, :func:`dream`, :func:`predict` and
:func:`embed` work without a store, and :func:`layers` says which networks and layers
there are. Heavy libraries (TensorFlow, FAISS, DuckDB) are imported
only when a call needs them.
"""

from __future__ import annotations

from pathlib import Path

from actdb.errors import ActdbError

__all__ = ["__version__", "ActdbError", "open", "merge", "dream", "predict", "embed",
           "layers"]


def __getattr__(name: str):
    if name == "__version__":  # read from the package metadata only when asked
        from actdb.version import __version__

        return __version__
    raise AttributeError(f"module 'actdb' has no attribute {name!r}")


def open(path: str | Path | None = None, **options):  # noqa: A001 - like sqlite3.connect
    """Open the store at ``path`` (else ``$ACTDB_STORE``, else ``./actdb-store``); it need not
    exist until ``ingest`` makes it. Options: see :class:`~actdb.database.Database`."""
    from actdb.database import Database

    return Database(path, **options)


def merge(dest: str | Path, sources: list[str | Path]):
    """Combine stores with identical manifests into ``dest``, then index it and compute its
    statistics (MergeResult)."""
    from actdb.merging import merge_stores

    return merge_stores(dest, sources)


def dream(output: str | Path, config=None, progress=None, **options):
    """Write a feature visualization to ``output`` (PNG/JPEG/... by its name) with a JSON
    sidecar; options are :class:`~actdb.options.DreamConfig`'s fields, as ``config`` or
    keywords over it (DreamResult)."""
    from actdb.featvis.dream import dream as run
    from actdb.options import DreamConfig
    from actdb.space import configured

    return run(configured(DreamConfig, config, options, "dream"), output, progress)


def predict(images, models=("vgg19", "vgg16", "resnet50"), weights=None, top: int = 3):
    """Top-``top`` ImageNet classes of each image under each full classifier in ``models``;
    ``weights``: one source for all (``"imagenet"``, a file, ``"random:SEED"``) or a dict
    per model. Returns a list of records."""
    from actdb.models.predict import PredictConfig
    from actdb.models.predict import predict as run

    per_model = {k.lower(): v for k, v in weights.items()} if isinstance(weights, dict) else {}
    default = weights if isinstance(weights, str) else "imagenet"
    return run([images] if isinstance(images, str | Path) else list(images),
               PredictConfig(models=tuple(models), weights=per_model,
                             default_weights=default, top=top))


def embed(images, **recipe):
    """Pooled vectors of image files under an explicit recipe (EmbedConfig's options), for
    images that belong to no store; ``actdb.open(store).space().embed()`` uses a store's."""
    from actdb.models.embed import build_embedder
    from actdb.options import EmbedConfig
    from actdb.space import configured

    return build_embedder(configured(EmbedConfig, None, recipe, "embed")).embed_files(
        [images] if isinstance(images, str | Path) else list(images))


def layers(model: str | None = None, *, image_size: int | None = None,
           preprocess: str | None = None) -> list:
    """Without ``model``: every registry network (ModelRow: native size, default layer).
    With one (a name or a saved FILE.keras): its layers and output shapes (LayerRow)."""
    from actdb.models import registry

    if model is None:
        return registry.model_rows()
    return registry.layer_rows(model, image_size=image_size, preprocess=preprocess)
