import pytest

from actdb.errors import UsageError, WeightsUnavailable
from actdb.models.classes import class_index
from actdb.models.predict import PredictConfig, parse_weights_options, predict
from tests.helpers import class_image


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    p = tmp_path_factory.mktemp("pred") / "x.png"
    class_image(1, 0, size=(60, 50)).save(p)
    return p


@pytest.mark.slow
def test_predictions_sum_to_one_and_name_real_classes(image):
    res = predict([image], PredictConfig(models=("vgg16", "resnet50"),
                                         default_weights="random:0", top=3))
    assert [r["model"] for r in res] == ["vgg16", "resnet50"]
    wnids = class_index().by_wnid
    for r in res:
        assert r["sum"] == pytest.approx(1.0, abs=1e-4)
        assert len(r["top"]) == 3
        probs = [t["probability"] for t in r["top"]]
        assert probs == sorted(probs, reverse=True)
        for t in r["top"]:
            assert wnids[t["wnid"]].name == t["class_name"]


def test_weights_options():
    assert parse_weights_options(["random:0"]) == ("random:0", {})
    assert parse_weights_options(["vgg16=f.h5", "random:1"]) == ("random:1", {"vgg16": "f.h5"})


@pytest.mark.slow
def test_bad_top_and_unavailable_weights(image, monkeypatch):
    with pytest.raises(UsageError):
        predict([image], PredictConfig(models=("vgg16",), top=0))
    import keras.src.utils.file_utils as fu

    def offline(*a, **k):
        raise Exception("URL fetch failure on https://x: None -- offline")

    monkeypatch.setattr(fu, "get_file", offline)
    with pytest.raises(WeightsUnavailable, match="--weights FILE"):
        predict([image], PredictConfig(models=("resnet50",)))


@pytest.mark.slow
def test_each_classifier_sees_the_image_at_its_own_size(image):
    """inception_v3 classifies at 299 x 299: its top-1 equals Keras' own classifier on the
    image decoded at 299 with inception's preprocess_input."""
    import keras
    import numpy as np

    from actdb.images import decode_named
    from tests.helpers import keras_reference

    res = predict([image], PredictConfig(models=("InceptionV3",), top=2,
                                         weights={"inception_v3": "random:0"}))
    assert [r["model"] for r in res] == ["inception_v3"]
    ref = keras_reference("InceptionV3", include_top=True)
    x = keras.applications.inception_v3.preprocess_input(
        decode_named(image, 299).astype(np.float32)[None])
    probs = np.asarray(ref(x, training=False))[0]
    top = np.argsort(-probs, kind="stable")[:2]
    assert [t["wnid"] for t in res[0]["top"]] == [class_index().classes[i].wnid for i in top]
    np.testing.assert_allclose([t["probability"] for t in res[0]["top"]], probs[top],
                               rtol=1e-5)


@pytest.mark.slow
def test_a_torchvision_classifier_beside_a_keras_one(image):
    """torchvision's resnet18 at 224 with ImageNet's mean and std: its probabilities equal
    the plain torch model's softmax on the image decoded at 224."""
    import numpy as np

    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from actdb.images import decode_named

    res = predict([image], PredictConfig(models=("torchvision:ResNet18", "vgg16"), top=3,
                                         weights={"torchvision:resnet18": "random:2",
                                                  "vgg16": "random:0"}))
    assert [r["model"] for r in res] == ["torchvision:resnet18", "vgg16"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        ref = torchvision.models.resnet18().eval()
    x = (decode_named(image, 224).astype(np.float32) / 255 - [0.485, 0.456, 0.406]) \
        / [0.229, 0.224, 0.225]
    with torch.no_grad():
        probs = torch.softmax(ref(torch.from_numpy(
            x.transpose(2, 0, 1)[None].astype(np.float32))).double(), -1)[0].numpy()
    top = np.argsort(-probs, kind="stable")[:3]
    assert [t["wnid"] for t in res[0]["top"]] == [class_index().classes[i].wnid for i in top]
    np.testing.assert_allclose([t["probability"] for t in res[0]["top"]], probs[top],
                               rtol=1e-5)
    assert parse_weights_options(["timm:resnet-18=r.pth"]) == ("imagenet",
                                                               {"timm:resnet18": "r.pth"})
