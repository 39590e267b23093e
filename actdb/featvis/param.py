"""Image parameterisations: what the optimiser changes, and how it becomes pixels.

``fourier_image`` is the improved recipe's (Lucid/Lucent's shape): a 1/f-scaled Fourier
spectrum per colour channel in a decorrelated colour space, squashed into valid pixels by a
sigmoid. The seed recipe optimises pixels directly (its start: :func:`seed_start`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Colour correlation (sqrt of the ImageNet RGB covariance), as used by Lucid/Lucent to
# decorrelate colour channels; normalised by its largest column norm.
COLOR_CORR = np.array([[0.26, 0.09, 0.02],
                       [0.27, 0.00, -0.05],
                       [0.27, -0.09, 0.03]], dtype=np.float32)
COLOR_CORR /= np.max(np.linalg.norm(COLOR_CORR, axis=0))


def seed_start(size: int, seed: int) -> np.ndarray:
    """The original's start: uniform random uint8 in 0..254 (``randint(0, 255)``).

    >>> seed_start(4, 0).shape, int(seed_start(64, 0).max()) <= 254
    ((4, 4, 3), True)
    """
    return np.random.RandomState(seed).randint(0, 255, size=(size, size, 3), dtype=np.uint8)


def fourier_scale(size: int) -> np.ndarray:
    """Each frequency's 1/f weight, times sqrt(h * w) to undo irfft2d's 1/(h * w)
    normalisation (as in Lucid)."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    freqs = np.sqrt(fx**2 + fy**2)
    return (size / np.maximum(freqs, 1.0 / size)).astype(np.float32)


def fourier_image(n: int, size: int, seed: int) -> tuple[list, Callable]:
    """``n`` images as (the variables to optimise, a function giving their RGB in [0, 1],
    shape (n, size, size, 3)). Every image starts from the seed's spectrum."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    shape = (3, size, size // 2 + 1)
    re, im = rng.normal(0, 0.01, shape), rng.normal(0, 0.01, shape)
    spec_re = tf.Variable(np.broadcast_to(re, (n, *shape)).astype(np.float32))
    spec_im = tf.Variable(np.broadcast_to(im, (n, *shape)).astype(np.float32))
    scale = tf.constant(fourier_scale(size))
    corr = tf.constant(COLOR_CORR.T)

    def to_rgb():
        spec = tf.complex(spec_re * scale, spec_im * scale)
        x = tf.signal.irfft2d(spec, fft_length=[size, size])  # (n, 3, size, size)
        x = tf.transpose(x, [0, 2, 3, 1]) / 4.0  # Lucid's constant: keeps the start near grey
        x = tf.tensordot(x, corr, 1)
        return tf.sigmoid(x)  # valid pixels, [0, 1]

    return [spec_re, spec_im], to_rgb
