"""Image decoding of odd kinds, corrupt files, folder layouts and deterministic splits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from transferlab.data import ImageDecodeError, load_rgb, load_split, scan_images
from transferlab.errors import DataError


def save(img: Image.Image, path, **kwargs):
    img.save(path, **kwargs)
    return path


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = save(Image.fromarray(np.full((5, 6), 77, np.uint8), mode="L"), tmp_path / "g.png")
    rgb = np.asarray(load_rgb(path))
    assert rgb.shape == (5, 6, 3) and (rgb == 77).all()


def test_rgba_is_composited_on_white(tmp_path):
    array = np.zeros((2, 2, 4), np.uint8)
    array[0, 0] = (255, 0, 0, 255)      # opaque red
    array[0, 1] = (255, 0, 0, 0)        # fully transparent
    array[1, 0] = (0, 0, 0, 128)        # half-transparent black
    rgb = np.asarray(load_rgb(save(Image.fromarray(array, mode="RGBA"), tmp_path / "a.png"))).astype(int)
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    assert tuple(rgb[0, 1]) == (255, 255, 255)
    assert abs(rgb[1, 0, 0] - 127) <= 1


def test_palette_with_and_without_transparency(tmp_path):
    img = Image.new("P", (3, 3), 1)
    img.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert tuple(np.asarray(load_rgb(save(img, tmp_path / "p.png")))[0, 0]) == (10, 200, 30)
    img.info["transparency"] = 1
    assert tuple(np.asarray(load_rgb(save(img, tmp_path / "pt.png", transparency=1)))[0, 0]) == (255, 255, 255)


def test_cmyk_jpeg(tmp_path):
    img = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red in CMYK
    rgb = np.asarray(load_rgb(save(img, tmp_path / "c.jpg", quality=100))).astype(int)
    assert rgb[0, 0, 0] > 240 and rgb[0, 0, 1] < 15 and rgb[0, 0, 2] < 15


def test_sixteen_bit_is_rescaled_not_clipped(tmp_path):
    array = np.array([[0, 32896, 65535]], dtype=np.uint16)
    rgb = np.asarray(load_rgb(save(Image.fromarray(array), tmp_path / "d.png")))
    assert rgb[0, :, 0].tolist() == [0, 128, 255]


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    rgb = load_rgb(save(img, tmp_path / "r.jpg", exif=exif.tobytes()))
    assert rgb.size == (20, 40)


def test_binary_and_float_modes(tmp_path):
    assert np.asarray(load_rgb(save(Image.new("1", (2, 2), 1), tmp_path / "b.png"))).max() == 255
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F")
    assert np.asarray(load_rgb(save(f, tmp_path / "f.tiff")))[0, :, 0].tolist() == [0, 128, 255]


def test_corrupt_truncated_empty_and_non_images_are_reported(tmp_path):
    good = save(Image.new("RGB", (30, 30), (1, 2, 3)), tmp_path / "good.jpg")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".DS_Store").write_bytes(b"\x00")
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        load_rgb(tmp_path / "truncated.jpg")
    good_paths, skipped = scan_images(tmp_path)
    reasons = {p.split("/")[-1]: r for p, r in skipped}
    assert reasons == {"empty.jpg": "empty file (0 bytes)", "notes.txt": "not an image file (suffix '.txt')",
                       "text.png": "not a readable image (UnidentifiedImageError)"}
    # the header of a truncated JPEG is fine: it is caught at decode time (extraction skips it)
    assert good in good_paths and tmp_path / "truncated.jpg" in good_paths


def test_very_large_images_are_refused(tmp_path):
    path = save(Image.new("L", (300, 300)), tmp_path / "big.png")
    with pytest.raises(ImageDecodeError, match="90,000 pixels is more than the limit of 10,000"):
        load_rgb(path, max_pixels=10_000)


# -- folders and splits --------------------------------------------------------------------------

def test_fifteen_scene_protocol_split_is_seeded_and_deterministic(digits_dir):
    a = load_split(digits_dir, train_per_class=10, seed=1)
    b = load_split(digits_dir, train_per_class=10, seed=1)
    c = load_split(digits_dir, train_per_class=10, seed=2)
    assert a.train == b.train and a.test == b.test
    assert a.train != c.train
    assert all(v["train"] == 10 for v in a.counts().values())
    assert len(a.train) + len(a.test) == 1797
    assert not {s.path for s in a.train} & {s.path for s in a.test}
    labels = [s.label for s in a.train]
    assert labels == sorted(labels)  # rows ordered by class, then path


def test_fraction_split(color_dir):
    split = load_split(color_dir, test_fraction=0.25)
    assert [v["test"] for v in split.counts().values()] == [3, 3, 3]


def test_given_train_test_layout(tmp_path):
    from tests_helpers import make_color_folder

    make_color_folder(tmp_path / "train", per_class=4)
    make_color_folder(tmp_path / "test", per_class=2, seed=1)
    split = load_split(tmp_path)
    assert split.layout == "train/test" and len(split.train) == 12 and len(split.test) == 6


def test_folder_errors(tmp_path, color_dir):
    with pytest.raises(DataError, match="does not exist"):
        load_split(tmp_path / "nope")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_split(tmp_path / "flat")
    (color_dir / "empty").mkdir()
    with pytest.raises(DataError, match=r"class folder\(s\) empty .* hold no usable image"):
        load_split(color_dir, train_per_class=2)
    (color_dir / "empty").rmdir()
    with pytest.raises(DataError, match="has 12 images; --train-per-class 100 leaves none"):
        load_split(color_dir)
    with pytest.raises(DataError, match="test-fraction must be between 0 and 1"):
        load_split(color_dir, test_fraction=1.5)


def test_single_class_and_mismatched_class_sets(tmp_path):
    from tests_helpers import make_color_folder

    make_color_folder(tmp_path / "one", classes=("red",))
    with pytest.raises(DataError, match="only one class"):
        load_split(tmp_path / "one", train_per_class=2)
    make_color_folder(tmp_path / "two" / "train", classes=("red", "green"), per_class=2)
    make_color_folder(tmp_path / "two" / "test", classes=("red", "blue"), per_class=2)
    with pytest.raises(DataError, match=r"only in train: \['green'\]; only in test: \['blue'\]"):
        load_split(tmp_path / "two")


def test_a_missing_image_says_so(tmp_path):
    with pytest.raises(ImageDecodeError, match="missing.png: no such file; check the path"):
        load_rgb(tmp_path / "missing.png")
