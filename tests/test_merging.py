"""actdb.merge: shards ingested apart, merged, equal one ingest; then indexed with
statistics, like the CLI."""

import numpy as np
import pytest

import actdb
from actdb.errors import StoreMismatch
from actdb.models.embed import EmbedConfig
from tests.helpers import SIZE, WEIGHTS, make_tree
from tests.ingest.test_pipeline import run, vectors_by_path


@pytest.mark.slow
def test_three_shards_merged_equal_a_single_ingest(tmp_path):
    root = make_tree(tmp_path / "data", per_class=4)
    single = tmp_path / "single"
    run(root, single)
    parts = [tmp_path / f"part{k}" for k in (1, 2, 3)]
    sizes = [run(root, p, shard=f"{k}/3").ingested for k, p in enumerate(parts, 1)]
    assert sum(sizes) == 12 and all(0 < s < 12 for s in sizes)
    res = actdb.merge(tmp_path / "merged", parts)
    assert res.added == 12 and res.renumbered > 0  # each shard numbered from 0
    vs, imgs = vectors_by_path(single)
    vm, imgm = vectors_by_path(tmp_path / "merged")
    assert vs.keys() == vm.keys()
    for k in vs:
        np.testing.assert_array_equal(vs[k], vm[k])
    cols = ["path", "split", "synset", "class_name", "class_index", "width", "height", "bytes"]
    a = imgs[cols].sort_values("path").reset_index(drop=True)
    b = imgm[cols].sort_values("path").reset_index(drop=True)
    assert a.equals(b)
    assert actdb.open(tmp_path / "merged").check().ok
    again = actdb.merge(tmp_path / "merged", parts[:1])
    assert again.added == 0 and again.skipped == sizes[0]


@pytest.mark.slow
def test_merge_refuses_different_manifests(tmp_path, built_store):
    root = make_tree(tmp_path / "data", per_class=1)
    run(root, tmp_path / "other", embed=EmbedConfig(weights=WEIGHTS, image_size=SIZE,
                                                    precision="fp32", pool="max"))
    with pytest.raises(StoreMismatch, match="pool"):
        actdb.merge(tmp_path / "m", [built_store, tmp_path / "other"])


@pytest.mark.slow
def test_failures_are_counted_as_recorded_and_info_names_the_roots(tmp_path):
    root = make_tree(tmp_path / "data", per_class=1)
    (root / "n01440764" / "broken.JPEG").write_bytes(b"not an image")
    parts = [tmp_path / "a", tmp_path / "b"]
    for p in parts:  # both saw the same broken file
        run(root, p)
    res = actdb.merge(tmp_path / "m", parts)
    db = actdb.open(tmp_path / "m")
    assert res.failures == 1 == db.sql("SELECT count(*) AS n FROM failures").to_pylist()[0]["n"]
    assert res.added == 3 and res.skipped == 3
    info = db.info()
    assert info["roots"] == {str(root.resolve()): 3} and info["failures"] == 1
