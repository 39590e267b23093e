"""Commands that show the store: plots, the report, maps, the atlas, exports, the service."""

from __future__ import annotations

from pathlib import Path

import typer

from actdb.cli.app import (
    JsonOpt,
    Output,
    QueriesArg,
    RuntimeOpt,
    SpaceOpt,
    StoreOpt,
    app,
    command,
    config_options,
    echo_json,
    echo_table,
    handle_errors,
    note,
    open_space,
    open_store,
    output_options,
    progress_bar,
    stages,
)
from actdb.errors import UsageError
from actdb.options import AtlasConfig, PlotConfig, ReportConfig

plot_app = typer.Typer(help="Plots with the query highlighted: tsne, umap, pca, profile, "
                       "distances.\n\nExample: actdb plot umap --query node4.png "
                       "--classes sea_cucumber,groenendael --random-classes 10 -o umap.png",
                       no_args_is_help=True, rich_markup_mode=None)
app.add_typer(plot_app, name="plot")

RandomOpt = typer.Option(0, "--random-classes", help="Also show N random other classes.")
OutOpt = typer.Option(..., "-o", "--output", help="Figure file: .png, .svg or .pdf.")
SeedOpt = typer.Option(0, help="Seed of the sample and the projection.")


def _plot(kind: str, queries, output: Path, store, space, runtime=None, **options) -> None:
    with stages() as stage:
        open_space(store, space, runtime).plot(kind, queries or [], output, progress=stage,
                                               **options)
    typer.echo(f"wrote {output}")


def _add_map_command(method: str, label: str) -> None:
    @config_options(PlotConfig, leave=("log", "bins"))
    def cmd(
        query: list[str] = typer.Option(None, "--query", help="Query image/id:/npy to "
                                        "highlight; repeatable."),
        output: Path = OutOpt,
        save_coords: Path = typer.Option(None, help="Save coordinates, sample ids and "
                                         "parameters to this .parquet."),
        space: str = SpaceOpt,
        runtime: str = RuntimeOpt,
        store: Path = StoreOpt,
        config: PlotConfig = None,
    ):
        _plot(method, query, output, store, space, runtime, config=config,
              save_coords=save_coords)

    cmd.__doc__ = (f"{label} map of stored vectors coloured by class, queries on top.\n\n"
                   f"Example: actdb plot {method} --query node4.png --classes "
                   f"sea_cucumber,groenendael --random-classes 10 -o {method}.png")
    plot_app.command(method)(handle_errors(cmd))


for _method, _label in (("tsne", "t-SNE"), ("umap", "UMAP"), ("pca", "PCA")):
    _add_map_command(_method, _label)


@plot_app.command("profile")
@handle_errors
@config_options(PlotConfig, leave=("random_classes", "per_class", "seed", "log", "bins"))
def plot_profile(
    queries: list[str] = QueriesArg,
    output: Path = OutOpt,
    space: str = SpaceOpt,
    runtime: str = RuntimeOpt,
    store: Path = StoreOpt,
    config: PlotConfig = None,
):
    """The query's channel values, overlaid with each named class's mean profile.

    Example: actdb plot profile node4.png --classes sea_cucumber,groenendael -o profile.png
    """
    _plot("profile", queries, output, store, space, runtime, config=config)


@plot_app.command("cka")
@handle_errors
def plot_cka(output: Path = OutOpt, store: Path = StoreOpt):
    """A heatmap of linear CKA between the store's spaces (the last `actdb compare`), each
    model's layers in depth order.

    Example: actdb compare && actdb plot cka -o cka.png
    """
    _plot("cka", [], output, store, None)


@plot_app.command("distances")
@handle_errors
@config_options(PlotConfig, leave=("per_class",))
def plot_distances(
    queries: list[str] = QueriesArg,
    output: Path = OutOpt,
    space: str = SpaceOpt,
    runtime: str = RuntimeOpt,
    store: Path = StoreOpt,
    config: PlotConfig = None,
):
    """Histograms of distances from the query to every image of each class, with the
    store's same-class / different-class / random pair distances for context.

    Example: actdb plot distances node4.png --classes sea_cucumber,groenendael
    --random-classes 10 --log -o dist.png
    """
    _plot("distances", queries, output, store, space, runtime, config=config)


@command()
@config_options(ReportConfig, leave=("log",))
def report(
    queries: list[str] = QueriesArg,
    output: Path = typer.Option("report.html", "-o", "--output", help="HTML file to write."),
    space: str = SpaceOpt,
    runtime: str = RuntimeOpt,
    store: Path = StoreOpt,
    config: ReportConfig = None,
):
    """One self-contained HTML report: query, neighbours, class vote, centroids, t-SNE and
    UMAP maps, distance histograms (images embedded; opens offline).

    Example: actdb report node4.png -o report.html
    """
    with stages() as stage:
        path = open_space(store, space, runtime).report(output, queries, config=config,
                                                        progress=stage)
    typer.echo(f"wrote {path}")


@command("map")
@output_options
def map_cmd(
    method: str = typer.Option("auto", help="auto (t-SNE below 20,000 points, else UMAP, "
                               "whose compile every new process pays), umap, tsne (openTSNE) "
                               "or pca."),
    per_class: int = typer.Option(None, help="Images per class (seeded sample; default: every "
                                  "class, at most 50,000 points)."),
    classes: str = typer.Option(None, help="Only these classes (comma-separated)."),
    random_classes: int = RandomOpt,
    seed: int = SeedOpt,
    list_maps: bool = typer.Option(False, "--list", help="List the stored maps instead."),
    space: str = SpaceOpt,
    store: Path = StoreOpt,
    out: Output = None,
):
    """Make a 2-D map of the store once and keep it: the page, plots, reports and exports
    reuse it, and new queries are placed into it in milliseconds. An up-to-date map of the
    same settings is reused; one made before the store changed is made again.

    Example: actdb map --method umap --per-class 50
    """
    from actdb import render

    if list_maps:
        df = open_store(store).maps().drop(columns=["settings"])
        rows = render.records(df)
        return echo_table(rows, list(df.columns), "maps") if out.table else out.rows(
            rows, list(df.columns))
    with stages() as stage:
        m = open_space(store, space).map(method, per_class=per_class, classes=classes,
                                         random_classes=random_classes, seed=seed,
                                         progress=stage)
    if not out.table:
        d = render.plain(m.describe())
        return out.rows([d], list(d), whole=d)
    how = f"made in {m.seconds:.1f} s" if m.made else f"up to date, made {m.created_at}"
    typer.echo(f"map {m.map_id}: {len(m.points)} points by {m.method}, {how}")


@command("atlas")
@config_options(AtlasConfig)
def atlas_cmd(
    channels: str = typer.Option(None, help="Channels: 0-511, 4,17,30-40 (default: all)."),
    space: str = SpaceOpt,
    store: Path = StoreOpt,
    as_json: bool = JsonOpt,
    config: AtlasConfig = None,
):
    """The study's question asked of every channel of the store's layer: each channel's
    feature visualisation, what the networks call it, where it lands among the stored images,
    what excites it in the data, and whether these agree; in the channels table (SQL) and a
    static site. A stopped run continues where it stopped. Runs on the TensorFlow backend of
    Keras (the pictures are made as actdb dream makes them).

    Example: actdb atlas --channels 4 --models vgg19,vgg16,resnet50 (the study's channel),
    then: actdb sql "SELECT channel, predicted_vgg19, nearest_centroid_class FROM channels
    WHERE agree_all"
    """
    from actdb import render

    with progress_bar(True, "channels", "ch/s") as update:
        last = {"done": 0, "total": None}

        def progress(done, total):
            last.update(done=done, total=total)
            if update:
                update(done, total)

        def stage(text):
            if update:
                update(last["done"], last["total"], text)

        r = open_space(store, space).atlas(channels, config=config, progress=progress,
                                           stage=stage)
    if as_json:
        return echo_json(render.plain(r.to_dict()))
    typer.echo(f"atlas: {r.made} pictures made, {r.skipped} already there, "
               f"{len(r.channels)} channels in {r.seconds:.0f} s; site {r.site}")


@command("export")
def export_cmd(
    output: Path = typer.Argument(..., help="A folder (projector) or a .parquet file (atlas, "
                                  "parquet)."),
    to: str = typer.Option(..., "--to", help="projector (TensorBoard Projector), atlas (Apple's "
                           "Embedding Atlas) or parquet (vectors and metadata joined)."),
    classes: str = typer.Option(None, help="Only these classes (comma-separated)."),
    per_class: int = typer.Option(None, help="At most N images a class (seeded sample)."),
    where: str = typer.Option(None, help="SQL predicate over images, e.g. \"split = 'val'\" or "
                              "a map selection's image_id IN (...)."),
    seed: int = SeedOpt,
    query: list[str] = typer.Option(None, "--query", help="atlas: a query image/id:/npy to add "
                                    "as a row placed in the map; repeatable."),
    method: str = typer.Option("auto", help="atlas: the map's projection (auto, umap, tsne, "
                               "pca)."),
    base_url: str = typer.Option(None, help="projector: the URL the folder will be served "
                                 "from, written into projector_config.json."),
    space: str = SpaceOpt,
    store: Path = StoreOpt,
):
    """Write the store for the tools people already use: TensorBoard Projector (a stratified
    sample of at most 100,000 points with a sprite of thumbnails), Apple's Embedding Atlas
    (map coordinates, class, path and thumbnails in one Parquet), or a plain Parquet of
    vectors and metadata.

    Example: actdb export --to atlas atlas.parquet --query node4.png, then
    embedding-atlas atlas.parquet --x x --y y --image thumbnail
    """
    with stages() as stage:
        r = open_space(store, space).export(to, output, classes=classes, per_class=per_class,
                                            where=where, seed=seed, queries=query or [],
                                            method=method, base_url=base_url, progress=stage)
    typer.echo(f"wrote {r.rows} rows of the space {r.space} to {r.path} "
               f"({', '.join(r.files)})")
    if r.note:
        note(r.note)
    if r.open_with:
        typer.echo(f"open it with: {r.open_with}")


@command("serve")
def serve_cmd(
    store: Path = StoreOpt,
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, help="Port."),
    token: str = typer.Option(None, envvar="ACTDB_TOKEN", help="Require this token on every "
                              "API call (Authorization: Bearer TOKEN); the page asks for it."),
    max_upload_mb: float = typer.Option(8.0, help="Largest accepted upload, in MB."),
    map_method: str = typer.Option("auto", "--map", help="The page's map: auto (t-SNE below "
                                   "20,000 points, else UMAP), umap, tsne or pca, made in the "
                                   "background when missing or stale; none: no map."),
    runtime: str = RuntimeOpt,
):
    """HTTP API and web page over a store, with the model kept warm.

    Example: actdb serve --store actdb-store --port 8000, then open http://127.0.0.1:8000/
    """
    from actdb.serve.app import ServeConfig, serve

    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        note(f"binding {host} without --token: anyone who can reach this port can query "
             "the store")
    if map_method not in ("auto", "umap", "tsne", "pca", "none"):
        raise UsageError(f"--map {map_method}: use auto, umap, tsne, pca or none")
    serve(ServeConfig(store=store, token=token, map_method=None if map_method == "none"
                      else map_method, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                      runtime=runtime),
          host, port)
