"""Comparing representation spaces: linear CKA, and how well a space separates classes.

Linear CKA (Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited")
of two sets of vectors of the same images, ``x`` (n, d1) and ``y`` (n, d2)::

    CKA = ||Yc' Xc||_F^2 / (||Xc' Xc||_F ||Yc' Yc||_F)      (Xc, Yc: columns centred)

:func:`linear_cka` computes it exactly from the d1 x d2 cross-covariance, reading the rows in
chunks (a memory map of 50,000 x 4,032 float32 vectors is never loaded whole).
:func:`minibatch_cka` is the minibatch estimate of Nguyen et al. (2021): the unbiased HSIC
estimator of Song et al. (2012) averaged over seeded minibatches, which is not biased by the
batch size as the plain estimate would be.

>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(500, 8))
>>> q = np.linalg.qr(rng.normal(size=(8, 8)))[0]  # a rotation
>>> round(linear_cka(x, 3 * x + 1), 6), round(linear_cka(x, x @ q), 6)
(1.0, 1.0)
"""

from __future__ import annotations

import re

import numpy as np

from actdb.errors import UsageError

CHUNK = 8192  # rows read at a time


def one_space(name: str) -> str:
    """Why a store of one space has nothing to compare, and what to do."""
    return (f"this store has one space ({name}); compare needs two or more: add a layer "
            "(`actdb ingest ROOT --layers A,B`) or a model (`actdb ingest ROOT --model NAME`)")


def _check(x, y) -> int:
    if len(x) != len(y):
        raise UsageError(f"the spaces hold different images ({len(x)} != {len(y)} rows)")
    if len(x) < 4:
        raise UsageError(f"CKA needs at least 4 shared images, not {len(x)}")
    return len(x)


def linear_cka(x, y, *, chunk: int = CHUNK) -> float:
    """Linear CKA of ``x`` and ``y`` (rows: the same images), exact, in float64."""
    n = _check(x, y)
    d1, d2 = x.shape[1], y.shape[1]
    sx, sy = np.zeros(d1), np.zeros(d2)
    xx, yy, xy = np.zeros((d1, d1)), np.zeros((d2, d2)), np.zeros((d1, d2))
    for i in range(0, n, chunk):
        a = np.asarray(x[i:i + chunk], np.float64)
        b = np.asarray(y[i:i + chunk], np.float64)
        sx += a.sum(0)
        sy += b.sum(0)
        xx += a.T @ a
        yy += b.T @ b
        xy += a.T @ b
    mx, my = sx / n, sy / n
    cxx = xx - n * np.outer(mx, mx)
    cyy = yy - n * np.outer(my, my)
    cxy = xy - n * np.outer(mx, my)
    return float(np.sum(cxy * cxy) / (np.linalg.norm(cxx) * np.linalg.norm(cyy)))


def unbiased_hsic(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 - the paper's L
    """The unbiased HSIC estimator (Song et al. 2012, eq. 5) of two n x n Gram matrices."""
    n = len(k)
    k, l = k.copy(), l.copy()  # noqa: E741
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    ones_k, ones_l = k.sum(0), l.sum(0)
    term = (np.sum(k * l) + ones_k.sum() * ones_l.sum() / ((n - 1) * (n - 2))
            - 2 * ones_k @ ones_l / (n - 2))
    return float(term / (n * (n - 3)))


def minibatch_cka(x, y, *, batch: int = 1000, seed: int = 0) -> float:
    """Debiased minibatch CKA (Nguyen et al. 2021): sums of unbiased HSICs over a seeded
    split of the rows into batches of about ``batch``."""
    n = _check(x, y)
    if batch < 4:
        raise UsageError(f"batch must be at least 4, not {batch}", param="batch")
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, max(1, n // batch))
    kl = kk = ll = 0.0
    for idx in parts:
        idx = np.sort(idx)  # memory maps read forward
        a = np.asarray(x[idx], np.float64)
        b = np.asarray(y[idx], np.float64)
        k, l = a @ a.T, b @ b.T  # noqa: E741
        kl += unbiased_hsic(k, l)
        kk += unbiased_hsic(k, k)
        ll += unbiased_hsic(l, l)
    return float(kl / np.sqrt(kk * ll))


def knn_accuracy(x, labels, *, k: int = 10, queries: int | None = 5000,
                 seed: int = 0) -> tuple[float, int]:
    """Leave-one-out k-NN class accuracy: each of ``queries`` seeded rows (None: all) takes
    the majority class of its ``k`` nearest other rows (ties: the class met first, nearest
    first). Returns (accuracy, queries asked). Exact L2 search (FAISS flat)."""
    import faiss

    labels = np.asarray(labels)
    n = len(labels)
    if n < 2:
        raise UsageError("k-NN accuracy needs at least 2 labelled images")
    k = min(k, n - 1)
    rows = np.arange(n) if queries is None or queries >= n else np.sort(
        np.random.default_rng(seed).choice(n, queries, replace=False))
    index = faiss.IndexFlatL2(x.shape[1])
    for i in range(0, n, CHUNK):
        index.add(np.ascontiguousarray(x[i:i + CHUNK], np.float32))
    _, nn = index.search(np.ascontiguousarray(x[rows], np.float32), k + 1)
    right = 0
    for r, found in zip(rows, nn, strict=True):
        others = [j for j in found if j != r and j >= 0][:k]
        votes: dict = {}
        for j in others:  # dicts keep insertion order: ties go to the nearer class
            votes[labels[j]] = votes.get(labels[j], 0) + 1
        right += max(votes, key=votes.get) == labels[r]
    return right / len(rows), len(rows)


def same_over_different(x, labels, *, pairs: int = 100_000, seed: int = 0) -> float:
    """Mean L2 distance of same-class pairs over that of different-class pairs, each mean
    over ``pairs`` seeded pairs (below 1: the space keeps classes together)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    paired = np.flatnonzero(counts[inverse] >= 2)
    if len(paired) == 0 or len(counts) < 2:
        raise UsageError("separation needs two images of one class and images of two classes")
    i = rng.choice(paired, pairs)
    c = inverse[i]
    j = order[start[c] + rng.integers(0, counts[c] - 1)]  # another of i's class ...
    j = np.where(j == i, order[start[c] + counts[c] - 1], j)  # ... never i itself
    a, b = rng.integers(0, len(labels), (2, 2 * pairs))
    keep = inverse[a] != inverse[b]
    a, b = a[keep][:pairs], b[keep][:pairs]

    def mean_dist(p, q):
        return np.concatenate([
            np.linalg.norm(np.asarray(x[p[s:s + CHUNK]], np.float64)
                           - np.asarray(x[q[s:s + CHUNK]], np.float64), axis=1)
            for s in range(0, len(p), CHUNK)]).mean()

    return float(mean_dist(i, j) / mean_dist(a, b))


def depth_order(spaces: list[tuple[str, str]]) -> list[str]:
    """Space names (from (model, layer) pairs in the store's order) with each model's layers
    in depth order, told by the numbers in their names (block3 before block10); models in
    the order they came.

    >>> depth_order([("vgg19", "block5_conv4"), ("vgg19", "block10_x"), ("r", "c2"),
    ...              ("vgg19", "block4_conv4")])
    ['vgg19/block4_conv4', 'vgg19/block5_conv4', 'vgg19/block10_x', 'r/c2']
    """
    models = list(dict.fromkeys(m for m, _ in spaces))

    def natural(layer: str) -> list:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", layer)]

    return [f"{m}/{layer}" for m in models
            for layer in sorted((x for mm, x in spaces if mm == m), key=natural)]
