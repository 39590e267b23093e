"""Commands that run models without a store: dream, predict, embed."""

from __future__ import annotations

from pathlib import Path

import typer

from actdb.cli.app import (
    JsonOpt,
    Output,
    RuntimeOpt,
    SpaceOpt,
    StoreOpt,
    command,
    config_options,
    echo_json,
    echo_table,
    note,
    open_space,
    open_store,
    output_options,
    progress_bar,
    recipe_options,
)
from actdb.errors import UsageError
from actdb.options import DreamConfig


@command()
@config_options(DreamConfig)
def dream(
    output: Path = typer.Option(..., "-o", "--output", help="Image to write (its name says "
                                "the format: .png, .jpg, ...), plus a .json sidecar with every "
                                "parameter and the objective per step."),
    store: Path = StoreOpt,
    as_json: bool = JsonOpt,
    config: DreamConfig = None,
):
    """Make a feature visualization: an image optimised to excite one channel.

    In a store (--store, $ACTDB_STORE or ./actdb-store), the network is the store's own
    (model, layer, weights, size) unless --model names another. Runs on Keras' TensorFlow
    backend, or on PyTorch for a torchvision, timm or PyTorch file network.

    Example: actdb dream --channel 4 --recipe seed --steps 100 --step-size 0.1 -o node4.png
    """
    import actdb

    db = open_store(store)
    in_store = db.exists()
    with progress_bar(not as_json, "dream", "steps/s") as bar:
        show = (lambda step, total, value: bar(step, total, f"objective {value:.4g}")) \
            if bar else None
        run = db.space().dream if in_store else actdb.dream
        res = run(output, config=config, progress=show)
    if in_store and config.model is None:
        c = res.config
        note(f"the store's network at {db.path}: {Path(c['model']).name} {c['layer']}, "
             f"weights {c['weights']}, {c['image_size']} px (--model names another)")
    if as_json:
        echo_json(res.to_dict())
    else:
        typer.echo(f"wrote {res.image} and {res.sidecar}: objective {res.start_activation:.4g} "
                   f"at the start, {res.final_activation:.4g} on the saved image")


@command()
@output_options
def predict(
    images: list[Path] = typer.Argument(..., help="Image files."),
    models: str = typer.Option("vgg19,vgg16,resnet50", help="Comma-separated classifiers: "
                               "any registry model (`actdb layers`), torchvision:NAME or "
                               "timm:NAME, each at its own size."),
    top: int = typer.Option(3, help="Classes per model."),
    weights: list[str] = typer.Option(None, help="imagenet | PATH | random:SEED for all "
                                      "models, or MODEL=SOURCE per model; repeatable."),
    out: Output = None,
):
    """What do full ImageNet classifiers call these images? (offline class names)

    Example: actdb predict node4.png --models vgg19,vgg16,resnet50 --top 3
    """
    import actdb
    from actdb.models.predict import parse_weights_options

    names = [m.strip().lower() for m in models.split(",") if m.strip()]
    default, per_model = parse_weights_options(weights)
    res = actdb.predict(images, models=names,
                        weights={**dict.fromkeys(names, default), **per_model}, top=top)
    rows = [{"image": r["image"], "model": r["model"], "rank": i + 1, **t}
            for r in res for i, t in enumerate(r["top"])]
    cols = ["image", "model", "rank", "class_name", "wnid", "probability"]
    if not out.table:
        return out.rows(rows, cols, whole=res)
    echo_table(rows, cols)


@command()
@output_options
def layers(
    model: str = typer.Argument(None, help="A Keras registry model, torchvision:NAME, "
                                "timm:NAME, or a saved FILE.keras / .pt / .pt2; leave out to "
                                "list the Keras models."),
    image_size: int = typer.Option(None, help="Input size for the output shapes (default: "
                                   "the model's native size)."),
    preprocess: str = typer.Option(None, help="With a saved model: caffe | tf | torch | none."),
    spatial: bool = typer.Option(False, "--spatial", help="Only layers with a spatial "
                                 "output (the ones --layer can embed with)."),
    out: Output = None,
):
    """Which networks actdb knows, or one network's layers and output shapes (a PyTorch
    network's named modules in the order they run, shapes as NCHW or tokens).

    Example: actdb layers inception_v3 --spatial;  actdb layers torchvision:googlenet
    """
    import actdb

    rows = [r._asdict() for r in actdb.layers(model, image_size=image_size,
                                              preprocess=preprocess)]
    if model is not None and spatial:
        rows = [r for r in rows if r["spatial"]]
    cols = list(rows[0]) if rows else []
    if not out.table:
        return out.rows(rows, cols)
    if model is not None:
        for r in rows:
            r["default"] = "default" if r["default"] else ""
    echo_table(rows, cols)


@command()
@recipe_options
def embed(
    images: list[Path] = typer.Argument(..., help="Image files."),
    output: Path = typer.Option(..., "-o", "--output", help="FILE.npy or FILE.parquet."),
    store: Path = typer.Option(None, "--store", help="Embed exactly as this store's images "
                               "(the default when no --model is given).", show_default=False),
    space: str = SpaceOpt,
    runtime: str = RuntimeOpt,
    recipe: dict = None,
):
    """Write the pooled vector(s) of images, as `nearest` computes them, to .npy or Parquet:
    with the store's recipe, or with --model and the recipe options (their defaults, not a
    store's).

    Example: actdb embed node4.png -o node4.npy && actdb nearest node4.npy -k 50
    """
    import actdb
    from actdb import render

    if output.suffix.lower() not in (".npy", ".parquet"):
        raise UsageError(f"cannot write {output.suffix or 'a file without extension'}: use "
                         "-o FILE.npy or FILE.parquet")
    if "model" not in recipe:
        if recipe:
            raise UsageError(f"--{next(iter(recipe)).replace('_', '-')} goes with --model "
                             "(without it, the store's recipe embeds)")
        vecs = open_space(store, space, runtime).embed(images)
    else:
        vecs = actdb.embed(images, **recipe)
    render.write_vectors(output, [p.stem for p in images], vecs)
    typer.echo(f"wrote {len(images)} vector(s) of dim {vecs.shape[1]} to {output}")
