"""Transformation robustness: the random pad, jitter and scale an image goes through before
the model sees it, so that the optimum does not depend on exact pixel positions. Seeded, and
the same for every image of a batch (a channel in a batch sees what a run of its own sees)."""

from __future__ import annotations

from collections.abc import Callable


def robustness(n: int, size: int, seed: int) -> Callable:
    """A function (n, size, size, 3) -> (n, size, size, 3): reflect-pad 12, jitter 8,
    scale 0.9-1.1, jitter 4, from a generator seeded with ``seed``."""
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(seed)

    def crop(x, side):  # a seeded random crop, the same for every image of the batch
        room = tf.shape(x)[1] - side + 1
        oy, ox = rng.uniform([], 0, room, tf.int32), rng.uniform([], 0, room, tf.int32)
        return tf.reshape(x[:, oy:oy + side, ox:ox + side, :], [n, side, side, 3])

    def robust(x):
        x = tf.pad(x, [[0, 0], [12, 12], [12, 12], [0, 0]], mode="REFLECT")
        x = crop(x, size + 16)
        s = rng.uniform([], 0.9, 1.1)
        new = tf.cast(tf.round(s * (size + 16)), tf.int32)
        x = tf.image.resize(x, [new, new])
        x = tf.image.resize_with_crop_or_pad(x, size + 8, size + 8)
        return crop(x, size)

    return robust
