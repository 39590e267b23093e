import numpy as np
import pytest
from PIL import Image

from actdb.errors import ImageError
from actdb.images import decode_image, is_image_name
from tests.helpers import add_bad_files, class_image

GOOD = ("cmyk.JPEG", "gray.JPEG", "rgba.png", "palette.png", "gray16.png", "png_named.JPEG")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("decode")
    bad = add_bad_files(d)
    return d, bad


@pytest.mark.parametrize("name", GOOD)
def test_real_imagenet_oddities_decode_to_rgb(files, name):
    d, _ = files
    arr, (w, h) = decode_image(d / name, 24)
    assert arr.shape == (24, 24, 3) and arr.dtype == np.uint8
    assert (w, h) == (48, 40)
    src = class_image(0, 99)
    if name.startswith("gray"):
        src = src.convert("L").convert("RGB")
    ref = np.asarray(src.resize((24, 24), Image.BILINEAR), dtype=np.float64)
    # Lossy JPEG/CMYK/palette round trips stay close to the original colours.
    assert np.abs(arr - ref).mean() < 25


def test_16bit_png_is_scaled_not_clipped(files):
    d, _ = files
    arr, _ = decode_image(d / "gray16.png", 24)
    arr8, _ = decode_image(d / "gray.JPEG", 24)
    assert arr.max() > 100  # clipping to 255 of 16-bit values would saturate everything
    assert np.abs(arr.astype(int) - arr8.astype(int)).mean() < 6


@pytest.mark.parametrize("name,reason", [("truncated.JPEG", "corrupt"), ("empty.JPEG", "empty"),
                                         ("notimage.JPEG", "not an image"),
                                         ("bomb.png", "decompression bomb")])
def test_bad_files_raise_with_reason(files, name, reason):
    d, _ = files
    with pytest.raises(ImageError, match=reason):
        decode_image(d / name, 24)


def test_center_crop_takes_the_middle():
    img = np.zeros((20, 60, 3), np.uint8)
    img[:, 20:40] = 255  # a white middle third
    arr, _ = decode_image(_png(img), 20, "center-crop")
    assert arr.mean() > 240
    arr, _ = decode_image(_png(img), 20, "squash")
    assert 60 < arr.mean() < 120


def test_extensions_are_case_insensitive():
    assert is_image_name("a/B.JPEG") and is_image_name("x.Png") and is_image_name("y.jpg")
    assert not is_image_name("labels.txt")


def _png(arr) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def test_the_bomb_guard_leaves_pillows_global_limit_alone(files, monkeypatch):
    d, _ = files
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(d / "bomb.png", 24)
    assert before == Image.MAX_IMAGE_PIXELS
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # a user who switched Pillow's off
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(d / "bomb.png", 24)
