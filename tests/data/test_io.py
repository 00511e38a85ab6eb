"""refcfa.data.io: images and masks, and the errors for bad files."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from refcfa.data.io import image_shape, read_image, read_mask
from refcfa.errors import DatasetError

from .fakes import fake_box, fake_image, fake_mask, write


def test_color_png_is_rgb(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0] = 10  # blue
    bgr[..., 2] = 200  # red
    image = read_image(write(tmp_path / "c.png", bgr))
    assert image.dtype == np.uint8 and image.shape == (4, 5, 3)
    assert image[0, 0].tolist() == [200, 0, 10]


def test_gray_png_stays_one_channel(tmp_path):
    gray = fake_image(8, 1, 0)
    image = read_image(write(tmp_path / "g.png", gray))
    assert image.shape == (8, 8, 1)
    np.testing.assert_array_equal(image[..., 0], gray)


def test_channels_forcing(tmp_path):
    gray_path = write(tmp_path / "g.png", fake_image(8, 1, 0))
    color_path = write(tmp_path / "c.png", fake_image(8, 3, 1))
    three = read_image(gray_path, channels=3)
    assert three.shape == (8, 8, 3) and np.all(three[..., 0] == three[..., 2])
    one = read_image(color_path, channels=1)
    rgb = read_image(color_path)
    assert one.shape == (8, 8, 1)
    np.testing.assert_array_equal(one[..., 0], cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    with pytest.raises(ValueError, match="channels=2"):
        read_image(color_path, channels=2)


def test_16bit_png_scaled_to_uint8(tmp_path):
    raw = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    image = read_image(write(tmp_path / "deep.png", raw))
    assert image.dtype == np.uint8 and image.shape == (1, 4, 1)
    assert image[0, :, 0].tolist() == [0, 1, 255, 128]


def test_rgba_png_drops_alpha(tmp_path):
    bgra = np.zeros((3, 3, 4), np.uint8)
    bgra[..., 1] = 77
    bgra[..., 3] = 5  # nearly transparent: alpha is ignored, not composited
    image = read_image(write(tmp_path / "a.png", bgra))
    assert image.shape == (3, 3, 3)
    assert image[1, 1].tolist() == [0, 77, 0]


def test_jpeg_and_bmp(tmp_path):
    assert read_image(write(tmp_path / "x.jpg", fake_image(16, 3, 2))).shape == (16, 16, 3)
    assert read_image(write(tmp_path / "x.bmp", fake_image(16, 1, 2))).shape == (16, 16, 1)


def test_missing_image_names_path(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        read_image(missing)


def test_non_image_file(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    with pytest.raises(
        DatasetError, match=r"cannot decode image .*notes\.png.*expected a PNG/JPEG/BMP/TIFF file"
    ):
        read_image(text)


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"empty\.png: the file is empty"):
        read_image(tmp_path / "empty.png")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image(tmp_path, suffix):
    path = write(tmp_path / f"t{suffix}", fake_image(32, 3, 3))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        DatasetError, match=rf"cannot decode image .*t\{suffix}: .*truncated.*expected a PNG/JPEG/BMP/TIFF"
    ):
        read_image(path)


def test_corrupt_png_body(tmp_path):
    path = write(tmp_path / "bad.png", fake_image(32, 3, 4))
    data = bytearray(path.read_bytes())
    data[40:200] = b"\x00" * 160  # header and IEND intact, pixel data destroyed
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"cannot decode image .*bad\.png"):
        read_image(path)


def test_directory_is_not_an_image(tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(DatasetError, match=r"d\.png is not a file"):
        read_image(tmp_path / "d.png")


def test_read_mask_binarises_any_nonzero(tmp_path):
    y0, y1, x0, x1 = fake_box(16)
    for name, mask in {
        "m255.png": fake_mask(16),
        "class_id.png": fake_mask(16, value=3),
        "three.png": fake_mask(16, channels=3),
    }.items():
        out = read_mask(write(tmp_path / name, mask))
        assert out.dtype == bool and out.shape == (16, 16)
        assert out.sum() == (y1 - y0) * (x1 - x0)
        assert out[y0:y1, x0:x1].all()


def test_mask_shape_mismatch_names_both_files(tmp_path):
    image = write(tmp_path / "img.png", fake_image(16, 3, 0))
    mask = write(tmp_path / "img_mask.png", fake_mask(8))
    pattern = rf"mask {re.escape(str(mask))} is 8x8 .* its image {re.escape(str(image))} is 16x16"
    with pytest.raises(DatasetError, match=pattern):
        read_mask(mask, shape=image_shape(image), image_path=image)
    assert read_mask(mask, shape=(8, 8, 3)).shape == (8, 8)


def test_image_shape_reads_png_header_and_other_files(tmp_path):
    assert image_shape(write(tmp_path / "a.png", np.zeros((5, 7), np.uint8))) == (5, 7)
    assert image_shape(write(tmp_path / "a.jpg", np.zeros((6, 9, 3), np.uint8))) == (6, 9)
