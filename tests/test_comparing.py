"""``compare``: CKA of every pair of spaces and each space's class separation, on a shared
seeded sample, against independent numpy computations, kept in SQL and drawn."""

import numpy as np
import pytest

import actdb
from actdb.comparing import CompareConfig, compare_spaces, shared_sample
from actdb.errors import QueryError
from actdb.similarity import knn_accuracy, same_over_different
from tests.helpers import synthetic_spaces


def gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s linear CKA from centred Gram matrices: HSIC(K, L) normalised."""
    n = len(x)
    h = np.eye(n) - 1.0 / n
    k, l = x @ x.T, y @ y.T  # noqa: E741 - the paper's names
    hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Three spaces of 60 images (each test's compare replaces the kept comparison)."""
    return synthetic_spaces(tmp_path_factory.mktemp("compare") / "s", n=60, dims=(4, 6, 3))


def test_cka_of_every_pair_matches_the_gram_formula_on_the_shared_sample(three):
    path, vecs = three
    with actdb.open(path) as db:
        res = db.compare(sample=40, seed=3)
        kept = db.sql("SELECT space_a, space_b, cka, method, n, seed FROM space_similarity "
                      "ORDER BY space_a, space_b").to_pylist()
    ids, names = shared_sample(db.store, CompareConfig(sample=40, seed=3))
    assert len(ids) == 40 and names == ["synthetic/a", "synthetic/b", "synthetic/c"]
    pairs = {(r["space_a"], r["space_b"]): r for r in kept}
    assert len(pairs) == 3 and len(res.similarity) == 3
    for (a, b), r in pairs.items():
        want = gram_cka(vecs[a[-1]][ids].astype(np.float64), vecs[b[-1]][ids].astype(np.float64))
        assert r["cka"] == pytest.approx(want, rel=1e-9)
        assert (r["method"], r["n"], r["seed"]) == ("exact", 40, 3)


def test_the_minibatch_estimate_is_used_when_the_sample_does_not_fit(three):
    path, _ = three
    store = actdb.open(path).store
    exact = compare_spaces(store, CompareConfig(sample=60)).similarity
    small = compare_spaces(store, CompareConfig(sample=60, memory_bytes=1, batch=20))
    assert set(small.similarity.method) == {"minibatch"}
    # the debiased estimate, not the exact value, over so few rows: only loosely alike
    np.testing.assert_allclose(small.similarity.cka, exact.cka, atol=0.5)


def test_separation_matches_the_arithmetic_on_the_same_sample(three):
    path, vecs = three
    with actdb.open(path) as db:
        sep = db.compare(sample=30, seed=1, k=3, queries=20, pairs=500).separation
        ids, _ = shared_sample(db.store, CompareConfig(sample=30, seed=1))
    labels = np.array([f"c{i % 3}" for i in ids])
    for r in sep.itertuples():
        x = vecs[r.space[-1]][ids]
        acc, asked = knn_accuracy(x, labels, k=3, queries=20, seed=1)
        assert (r.knn_accuracy, r.queries, r.n) == (acc, asked, 30)
        assert r.same_over_different == same_over_different(x, labels, pairs=500, seed=1)


def test_plot_cka_draws_the_kept_comparison_in_depth_order(tmp_path):
    path, _ = synthetic_spaces(tmp_path / "s", n=12, dims=(4, 6, 3))
    with actdb.open(path) as db:
        with pytest.raises(QueryError, match="actdb compare"):
            db.space().plot("cka")
        db.compare(sample=12)
        fig = db.space().plot("cka", output=tmp_path / "cka.png")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["synthetic/a", "synthetic/b", "synthetic/c"]
    assert (tmp_path / "cka.png").stat().st_size > 1000


@pytest.mark.slow  # builds an index per space (seconds)
@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
def test_the_sample_is_read_from_the_index_exactly_as_from_the_shards(tmp_path, kind):
    from actdb.comparing import sample_vectors

    path, vecs = synthetic_spaces(tmp_path / "s", n=300, dims=(16, 8))
    ids = np.array([3, 17, 120, 299])
    with actdb.open(path) as db:
        for name in ("synthetic/a", "synthetic/b"):
            sub = db.space(name)
            sub.index(kind=kind)
            got = sample_vectors(sub.store, ids)
            np.testing.assert_array_equal(got, vecs[name[-1]][ids])


def test_a_store_of_one_space_and_a_sample_too_small_are_refused_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from actdb.cli import app

    one, _ = synthetic_spaces(tmp_path / "one", n=6, dims=(4,))
    runner = CliRunner()
    for args in (["compare"], ["plot", "cka", "-o", str(tmp_path / "c.png")]):
        res = runner.invoke(app, [*args, "--store", str(one)])
        assert res.exit_code != 0 and isinstance(res.exception, SystemExit | None), args
        assert "has one space (synthetic/a); compare needs two or more" in res.stderr, args
    two, _ = synthetic_spaces(tmp_path / "two", n=6)
    res = runner.invoke(app, ["compare", "--sample", "1", "--store", str(two)])
    assert res.exit_code == 2 and "sample must be at least 4 images, not 1" in res.stderr
    assert "share" not in res.stderr
