"""CKA and class separation against independent numpy implementations of the papers' formulas."""

import numpy as np
import pytest

from actdb import similarity
from actdb.errors import UsageError


def gram_cka(x, y):
    """Kornblith et al. (2019), eq. 1-2: HSIC = tr(K H L H) / (n-1)^2 with K = X X', centring
    matrix H = I - 11'/n; CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T  # noqa: E741

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def u_centred(k):
    """Székely and Rizzo's U-centring (2014): the unbiased HSIC is <U(K), U(L)> / (n(n-3))."""
    n = len(k)
    k = k.copy()
    np.fill_diagonal(k, 0)
    u = (k - k.sum(0, keepdims=True) / (n - 2) - k.sum(1, keepdims=True) / (n - 2)
         + k.sum() / ((n - 1) * (n - 2)))
    np.fill_diagonal(u, 0)
    return u


def debiased_cka(x, y):
    k, l = u_centred(x @ x.T), u_centred(y @ y.T)  # noqa: E741
    return np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l))


def related(n, seed=0, d1=24, d2=16):
    """Two spaces of one set of images: y is a noisy nonlinear map of x."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1)) * np.linspace(3, 0.2, d1)
    y = np.tanh(x @ rng.normal(size=(d1, d2)) / 4) + 0.5 * rng.normal(size=(n, d2))
    return x.astype(np.float32), y.astype(np.float32)


def test_linear_cka_equals_the_papers_gram_formula():
    x, y = related(300)
    ref = gram_cka(x.astype(np.float64), y.astype(np.float64))
    assert 0.2 < ref < 0.95
    assert similarity.linear_cka(x, y) == pytest.approx(ref, abs=1e-9)
    assert similarity.linear_cka(x, y, chunk=7) == pytest.approx(ref, abs=1e-9)  # streamed


def test_unbiased_hsic_equals_u_centring():
    x, y = (v.astype(np.float64) for v in related(120, seed=1))
    k, l = x @ x.T, y @ y.T  # noqa: E741
    n = len(x)
    assert similarity.unbiased_hsic(k, l) == pytest.approx(
        np.sum(u_centred(k) * u_centred(l)) / (n * (n - 3)), rel=1e-9)


def test_cka_invariances():
    rng = np.random.default_rng(2)
    x, _ = related(1000, seed=2)
    q = np.linalg.qr(rng.normal(size=(x.shape[1], x.shape[1])))[0]
    for estimate in (similarity.linear_cka,
                     lambda a, b: similarity.minibatch_cka(a, b, batch=250)):
        assert estimate(x, x @ q) == pytest.approx(1, abs=1e-6)
        assert estimate(x, 2.5 * x - 7) == pytest.approx(1, abs=1e-6)
    noise = rng.normal(size=(5000, 16))
    other = rng.normal(size=(5000, 16))
    assert similarity.linear_cka(noise, other) < 0.01
    assert abs(similarity.minibatch_cka(noise, other, batch=500)) < 0.01


@pytest.mark.slow  # seconds: a 5000 x 5000 Gram matrix
def test_minibatch_estimate_is_within_0_01_of_the_full_one_at_5000():
    x, y = related(5000, seed=3)
    full = debiased_cka(x.astype(np.float64), y.astype(np.float64))
    mini = similarity.minibatch_cka(x, y, batch=500, seed=0)
    assert abs(mini - full) < 0.01
    assert abs(similarity.linear_cka(x, y) - full) < 0.01  # n >> d: the bias is small here
    assert similarity.minibatch_cka(x, y, batch=500, seed=0) == mini  # seeded: repeats


def test_knn_accuracy_against_brute_force():
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(5), 40)
    x = (rng.normal(size=(200, 6)) + labels[:, None] * 0.8).astype(np.float32)
    acc, asked = similarity.knn_accuracy(x, labels, k=5, queries=None)
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    right = 0
    for r in range(200):
        near = np.argsort(d[r], kind="stable")[:5]
        votes = {}
        for j in near:
            votes[labels[j]] = votes.get(labels[j], 0) + 1
        right += max(votes, key=votes.get) == labels[r]
    assert asked == 200 and acc == right / 200 and 0.3 < acc < 1
    sub, asked = similarity.knn_accuracy(x, labels, k=5, queries=50, seed=1)
    assert asked == 50 and 0 <= sub <= 1


def test_same_over_different_against_all_pairs():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(4), 30)
    x = rng.normal(size=(120, 5)) + labels[:, None] * 1.5
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    same = labels[:, None] == labels[None]
    off = ~np.eye(120, dtype=bool)
    ref = d[same & off].mean() / d[~same].mean()
    got = similarity.same_over_different(x, labels, pairs=200_000, seed=0)
    assert got == pytest.approx(ref, rel=0.01) and got < 1
    with pytest.raises(UsageError, match="two classes"):
        similarity.same_over_different(x, np.zeros(120), pairs=10)
