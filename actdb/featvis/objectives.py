"""Objectives: what is maximised, one value per image of a batch, each image for its own
channel. ``channel`` is the mean of the channel over all positions (the study's), ``neuron``
the channel at the centre position."""

from __future__ import annotations

from collections.abc import Callable

from actdb.errors import UsageError

OBJECTIVES = ("channel", "neuron")


def channel_objectives(kind: str, channels: list[int], dim: int, layer: str) -> Callable:
    """(B, h, w, C) activations -> (B,) values, image ``i`` scored on ``channels[i]``. Written
    per image, as a single run computes it, so a batch gives each channel what a run of its
    own gives."""
    import tensorflow as tf

    for ch in channels:
        if not 0 <= ch < dim:
            raise UsageError(f"channel {ch} out of range; {layer} has {dim} channels")

    def objectives(act):
        act = tf.cast(act, tf.float32)  # bf16 features: reduce in float32
        if kind == "neuron":
            h, w = act.shape[1] // 2, act.shape[2] // 2
            return tf.stack([tf.reduce_mean(act[i, h, w, ch]) for i, ch in enumerate(channels)])
        return tf.stack([tf.reduce_mean(act[i, :, :, ch]) for i, ch in enumerate(channels)])

    return objectives
