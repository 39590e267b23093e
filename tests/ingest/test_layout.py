import pytest

from actdb.errors import DatasetError
from actdb.ingest.layout import detect_layout
from actdb.models.classes import class_index, val_labels
from tests.helpers import class_image, make_tree

VAL_NAMES = sorted(val_labels())[:4]  # real ILSVRC2012 val file names with offline labels


def _flat_val(folder, names=VAL_NAMES):
    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        class_image(i % 3, i).save(folder / n, "JPEG")


def _by_path(layout):
    return {e.path: e for e in layout.entries}


def test_wnid_folders_get_keras_names(tree):
    lay = detect_layout(tree)
    assert lay.name == "wnid-folders"
    e = _by_path(lay)["n02321529/n02321529_0.JPEG"]
    assert (e.synset, e.class_name, e.class_index, e.split) == (
        "n02321529", "sea_cucumber", 329, "train")
    assert len(lay.entries) == 12


def test_train_and_flat_val_with_loc_solution(tmp_path):
    make_tree(tmp_path / "train", per_class=2)
    _flat_val(tmp_path / "val")
    rows = ["ImageId,PredictionString"] + [
        f"{n.split('.')[0]},n02105056 1 2 3 4" for n in VAL_NAMES]
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    lay = detect_layout(tmp_path)
    assert lay.name == "splits"
    val = [e for e in lay.entries if e.split == "val"]
    assert len(val) == 4 and {e.class_name for e in val} == {"groenendael"}
    assert any("LOC_val_solution" in n for n in lay.notes)
    assert sum(e.split == "train" for e in lay.entries) == 6


def test_kaggle_cls_loc(tmp_path):
    base = tmp_path / "ILSVRC" / "Data" / "CLS-LOC"
    make_tree(base / "train", per_class=1)
    _flat_val(base / "val")
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n" + "".join(f"{n[:-5]},n01440764 0 0 1 1\n" for n in VAL_NAMES))
    lay = detect_layout(tmp_path)
    assert lay.name == "kaggle-cls-loc"
    assert {e.split for e in lay.entries} == {"train", "val"}
    assert all(e.class_name == "tench" for e in lay.entries if e.split == "val")
    assert all(e.path.startswith("ILSVRC/Data/CLS-LOC/") for e in lay.entries)


def test_flat_val_uses_offline_map_when_no_label_file(tmp_path):
    _flat_val(tmp_path)
    lay = detect_layout(tmp_path)
    assert lay.name == "val-flat"
    idx = class_index()
    for e in lay.entries:
        assert e.class_index == val_labels()[e.path]
        assert e.synset == idx.classes[e.class_index].wnid


def test_ground_truth_without_meta_mat_is_reported_and_ignored(tmp_path):
    _flat_val(tmp_path)
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n2\n3\n4\n")
    lay = detect_layout(tmp_path)
    assert any("meta.mat" in n for n in lay.notes)
    assert all(e.class_index == val_labels()[e.path] for e in lay.entries)


def test_any_class_folder_tree_and_case_insensitive_extensions(tmp_path):
    for cls, ext in (("cats", ".jpg"), ("dogs", ".JPG"), ("birds", ".Png")):
        (tmp_path / cls).mkdir()
        class_image(0, 0).save(tmp_path / cls / f"a{ext}", "PNG" if "ng" in ext.lower() else "JPEG")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    lay = detect_layout(tmp_path)
    assert lay.name == "class-folders"
    assert sorted(e.class_name for e in lay.entries) == ["birds", "cats", "dogs"]
    assert all(e.synset is None and e.class_index is None for e in lay.entries)


def test_missing_or_empty_root_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        detect_layout(tmp_path / "nope")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images found"):
        detect_layout(tmp_path / "empty")
