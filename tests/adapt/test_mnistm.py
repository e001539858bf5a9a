"""The MNIST-M recipe |patch - digit|, the offline analogue, and the offline failures of the real download."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest

from transferlab.adapt import blend_digits, digits_domains
from transferlab.adapt import mnistm
from transferlab.errors import DataError


def test_blend_is_abs_difference_with_binarised_digit():
    digits = np.zeros((2, 4, 4), dtype=np.uint8)
    digits[0, 1, 1] = 200
    digits[1, 2, 2] = 10  # below the threshold: not a stroke
    photo = np.zeros((6, 6, 3), dtype=np.uint8)
    photo[..., 0], photo[..., 1], photo[..., 2] = 30, 100, 250  # constant colour: every patch is equal
    out = blend_digits(digits, [photo], threshold=50)
    assert out.shape == (2, 4, 4, 3) and out.dtype == np.uint8
    assert out[0, 1, 1].tolist() == [225, 155, 5]  # |c - 255| on the stroke
    assert out[0, 0, 0].tolist() == [30, 100, 250]  # the photo elsewhere
    assert (out[1] == photo[:4, :4]).all()


def test_blend_takes_patches_from_the_photos():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(10, 12, 3), dtype=np.uint8)
    out = blend_digits(np.zeros((5, 4, 4), np.uint8), [photo], seed=3)
    windows = {photo[y:y + 4, x:x + 4].tobytes() for y in range(7) for x in range(9)}
    assert all(o.tobytes() in windows for o in out)
    assert np.array_equal(out, blend_digits(np.zeros((5, 4, 4), np.uint8), [photo], seed=3))  # seeded


@pytest.mark.parametrize("digits, photos, match", [
    (np.zeros((4, 4), np.uint8), [np.zeros((8, 8, 3), np.uint8)], "must be a \\(N, H, W\\) array"),
    (np.zeros((1, 4, 4), np.uint8), [], "no photos"),
    (np.zeros((1, 9, 9), np.uint8), [np.zeros((8, 8, 3), np.uint8)], "photo 0 has shape"),
])
def test_blend_errors(digits, photos, match):
    with pytest.raises(DataError, match=match):
        blend_digits(digits, photos)


def test_offline_analogue_pairs_the_same_digits():
    d = digits_domains(size=28)
    src, tgt = d["digits"], d["digits-m"]
    assert src["x_train"].shape == (1257, 28, 28) and tgt["x_train"].shape == (1257, 28, 28, 3)
    assert src["x_test"].shape[0] == tgt["x_test"].shape[0] == 540
    assert np.array_equal(src["y_train"], tgt["y_train"]) and set(src["y_test"].tolist()) == set(range(10))
    # the target is colourful (the three channels differ), the source is gray
    assert np.abs(tgt["x_train"][..., 0].astype(int) - tgt["x_train"][..., 2]).mean() > 20


def test_mnist_offline_is_a_clear_data_error(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    def offline(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(MNIST, "download", offline)
    with pytest.raises(DataError, match="MNIST is not in .* could not be downloaded.*digits-m"):
        mnistm.load_mnist(tmp_path, train=True)


def test_bsds500_offline_is_a_clear_data_error(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    with pytest.raises(DataError, match="BSDS500 photos .* could not be downloaded .*--photos DIR"):
        mnistm.load_bsds500_photos(tmp_path)


def test_photo_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no readable image in photo folder"):
        mnistm.load_photo_folder(tmp_path)
