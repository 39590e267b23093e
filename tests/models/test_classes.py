from actdb.models.classes import class_index


def test_class_index_has_1000_wnids_with_keras_names():
    idx = class_index()
    assert len(idx) == 1000 and len(idx.by_wnid) == 1000
    assert idx.by_wnid["n02321529"].name == "sea_cucumber"
    assert idx.by_wnid["n02105056"].name == "groenendael"
    assert idx.classes[0].wnid == "n01440764"
