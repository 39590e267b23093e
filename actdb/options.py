"""What the commands take, declared once: each option's default, help and flags are a field
of a config here, which the command line (``cli.app.config_options`` makes one option per
field that has a help) and the face (``config=None, **options`` on Space and Database) both
read. Light on purpose: ``actdb --help`` imports it, so no numpy here.

>>> from dataclasses import fields
>>> [(f.name, f.default, f.metadata["help"]) for f in fields(PlotConfig)][-1]
('bins', 40, 'Histogram bins.')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["STATS_DEFAULTS", "AtlasConfig", "CompareConfig", "DreamConfig", "EmbedConfig",
           "PlotConfig", "ReportConfig", "StatsConfig", "option"]


def option(default, help: str, *flags: str):
    """A config field with the help (and flags) its command-line option shows."""
    return field(default=default, metadata={"help": help, "flags": flags})


@dataclass(frozen=True, kw_only=True)
class EmbedConfig:
    """How images become vectors (the recipe): stored in the manifest, queries reuse it
    unchanged. ``actdb ingest`` and ``actdb embed --model`` take each field as an option
    (``cli.app.recipe_options``); left out, a store's recipe (else these defaults)."""

    model: str = option("vgg19", "vgg19 (default), any keras.applications model by its "
                        "lower-case name (`actdb layers` lists them), torchvision:NAME, "
                        "timm:NAME, or a saved FILE.keras, FILE.pt (TorchScript) or FILE.pt2 "
                        "(torch.export).")
    layer: str | None = option(None, "Layer to read (default: the model's last convolutional "
                               "stage, e.g. vgg19 block5_conv4; `actdb layers MODEL` lists "
                               "them).")
    pool: str = option("mean", "mean (default: the original study's) or max over positions "
                       "(a token layer's: over tokens), or cls (a token layer's first token).")
    weights: str = option("imagenet", "imagenet (default) | PATH to a Keras weights file or a "
                          "PyTorch state dict | random:SEED.")
    image_size: int | None = option(None, "Square input size in pixels (default: the model's "
                                    "native size, e.g. 224, inception_v3 299).",
                                    "--image-size", "--size")
    resize: str = option("squash", "squash (default: whole image to size x size, bilinear) or "
                         "center-crop. Query images get the same.")
    precision: str = option("auto", "auto (default) | fp32 | bf16 (auto: bf16 where the "
                            "hardware has it; see README).")
    preprocess: str | None = option(None, "A saved model's input scaling: caffe | tf | torch "
                                    "| none (registry models have their own).")


@dataclass(frozen=True, kw_only=True)
class PlotConfig:
    """What a plot shows. ``per_class`` applies to maps; distances use every image."""

    classes: tuple[str, ...] | None = option(None, "Classes to show (comma-separated; "
                                             "none and no random ones: every class).")
    random_classes: int = option(0, "Also show N random other classes.", "--random-classes")
    per_class: int = option(100, "Images per class in the maps (seeded sample).")
    seed: int = option(0, "Seed of the sample and the projection.")
    log: bool = option(False, "Log distance axis (the query may be orders of magnitude "
                       "farther than in-data pairs).", "--log")
    bins: int = option(40, "Histogram bins.")


@dataclass(frozen=True, kw_only=True)
class ReportConfig(PlotConfig):
    """What ``actdb report`` shows: a plot's options, the neighbours and thumbnails."""

    k: int = option(12, "Neighbours shown per query.", "-k", "--k")
    thumb: int = 112  # thumbnail size in pixels


#: What ``stats`` uses where neither the call nor the store's last run says.
STATS_DEFAULTS = {"seed": 0, "pairs_per_class": 500, "pair_sample": 100_000, "nn_sample": 1000}


def _as_recorded(what: str, name: str) -> str:
    return f"{what} (default: as recorded, else {STATS_DEFAULTS[name]})."


@dataclass(frozen=True, kw_only=True)
class StatsConfig:
    """Sample sizes and seed of ``actdb stats``; None: as the store recorded them last time,
    else :data:`STATS_DEFAULTS`."""

    seed: int | None = option(None, _as_recorded("Seed of the pair samples", "seed"))
    pairs_per_class: int | None = option(None, _as_recorded(
        "Same- and different-class pairs per class, every pair when fewer exist",
        "pairs_per_class"))
    pair_sample: int | None = option(None, _as_recorded(
        "Random pairs for the random-pair row", "pair_sample"))
    nn_sample: int | None = option(None, _as_recorded(
        "Images whose nearest stored neighbour gives the distance reference", "nn_sample"))


@dataclass(frozen=True, kw_only=True)
class CompareConfig:
    """The shared sample and the measures' settings of ``actdb compare``."""

    sample: int = option(50_000, "Images every space is compared on (a seeded sample of "
                         "those they share; all when fewer).")
    seed: int = option(0, "Seed of the sample, the voters and the pairs.")
    k: int = option(10, "Neighbours of the k-NN class vote.", "-k", "--k")
    queries: int = option(5000, "Labelled sample images that vote (leave-one-out).")
    pairs: int = option(100_000, "Same- and different-class pairs of the distance ratio.")
    batch: int = 1000  # rows per minibatch of the minibatch CKA
    memory_bytes: int = 4 << 30  # above: two spaces' sample vectors get the minibatch CKA


def recipe_field(name: str):
    """A field of another config that is the recipe's ``name``: EmbedConfig's help and flags,
    None by default (the store's, else the recipe's default, where the command says)."""
    f = EmbedConfig.__dataclass_fields__[name]
    return option(None, f.metadata["help"], *f.metadata["flags"])


@dataclass(frozen=True, kw_only=True)
class DreamConfig:
    """Everything ``actdb dream`` takes. The recipe's fields left None are the store's (in a
    store, unless ``model`` names another network), else vgg19, imagenet and the model's
    native size."""

    model: str | None = recipe_field("model")
    preprocess: str | None = recipe_field("preprocess")
    layer: str | None = recipe_field("layer")
    channel: int = option(4, "Channel to maximise (0-based).")
    weights: str | None = recipe_field("weights")
    image_size: int | None = recipe_field("image_size")
    steps: int | None = option(None, "Optimisation steps (seed: 100, improved: 256).")
    step_size: float | None = option(None, "seed: gradient step (0.1); improved: Adam "
                                     "learning rate (0.05).")
    seed: int = option(0, "Random seed of the start image.")
    recipe: str = option("improved", "seed (the original write-up, quirks included) or "
                         "improved (Fourier + decorrelated colour + jitter/scale robustness).")
    objective: str = option("channel", "channel (mean over positions) or neuron (centre "
                            "position).")
    precision: str = option("fp32", "fp32, bf16 or auto (bf16 where the CPU or GPU has it).")


@dataclass(frozen=True, kw_only=True)
class AtlasConfig:
    """Everything ``actdb atlas`` takes."""

    channels: tuple[int, ...] | None = None  # None: every channel of the layer
    recipe: str = option("improved", "improved or seed (as actdb dream).")
    steps: int | None = option(None, "Optimisation steps (default: the recipe's).")
    image_size: int | None = option(None, "Square picture size in pixels (default: the "
                                    "store's image size).", "--image-size", "--size")
    batch: int = option(8, "Channels optimised at once, as one batch.")
    models: tuple[str, ...] = option(("vgg19", "vgg16", "resnet50"), "Classifiers asked what "
                                     "each picture is (comma-separated).")
    k: int = option(12, "Nearest stored images per picture.", "-k", "--k")
    examples: int = option(12, "Top and bottom stored images per channel.")
    seed: int = option(0, "Seed of the pictures.")
    variants: bool = option(False, "Also a picture with the neuron objective and one from the "
                            "next seed (stability).", "--variants")
    precision: str = option("auto", "fp32, bf16 or auto (bf16 where the CPU or GPU has it).")
    heatmaps: bool = option(True, "Where in the top images each channel fires (runs the model "
                            "on them).", "--heatmaps/--no-heatmaps")
    output: Path | None = option(None, "Folder for the static site (default: the store's "
                                 "atlas/site, what actdb serve shows).", "-o", "--output")
