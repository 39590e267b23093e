"""What ``actdb atlas`` takes, declared once: each option's default, help and flags are a
field of :class:`AtlasConfig`, which the command line (``cli.app.config_options``) and the
face (``Space.atlas``) both read. Light on purpose: ``actdb --help`` imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def _opt(default, help: str, *flags: str):
    """A field with the help (and flags) its command-line option shows: the one place an
    option of ``actdb atlas`` is declared (``cli.app.config_options`` reads it)."""
    return field(default=default, metadata={"help": help, "flags": flags})


@dataclass(frozen=True, kw_only=True)
class AtlasConfig:
    """Everything ``actdb atlas`` takes, its defaults and help declared once here."""

    channels: tuple[int, ...] | None = None  # None: every channel of the layer
    recipe: str = _opt("improved", "improved or seed (as actdb dream).")
    steps: int | None = _opt(None, "Optimisation steps (default: the recipe's).")
    size: int | None = _opt(None, "Picture size in pixels (default: the store's image size).")
    batch: int = _opt(8, "Channels optimised at once, as one batch.")
    models: tuple[str, ...] = _opt(("vgg19", "vgg16", "resnet50"), "Classifiers asked what "
                                   "each picture is (comma-separated).")
    k: int = _opt(12, "Nearest stored images per picture.", "-k", "--k")
    examples: int = _opt(12, "Top and bottom stored images per channel.")
    seed: int = _opt(0, "Seed of the pictures.")
    variants: bool = _opt(False, "Also a picture with the neuron objective and one from the "
                          "next seed (stability).", "--variants")
    precision: str = _opt("auto", "fp32, bf16 or auto (bf16 where the CPU or GPU has it).")
    heatmaps: bool = _opt(True, "Where in the top images each channel fires (runs the model "
                          "on them).", "--heatmaps/--no-heatmaps")
    output: Path | None = _opt(None, "Folder for the static site (default: the store's "
                               "atlas/site, what actdb serve shows).", "-o", "--output")
