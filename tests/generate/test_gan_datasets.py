"""GAN datasets: offline digits, image folders, torchvision loaders failing clearly offline, CelebA attributes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from transferlab.errors import ConfigError, DataError
from transferlab.generate import CELEBA_ATTRIBUTES, load_gan_data, resolve_attribute
from transferlab.generate.datasets import labels_of


def test_digits_default(digits_gan):
    assert len(digits_gan) == 1797 and digits_gan.channels == 1 and digits_gan.classes == [str(i) for i in range(10)]
    x, y, _ = digits_gan.dataset[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) == -1.0 and float(x.max()) <= 1.0
    assert np.bincount(labels_of(digits_gan)).tolist()[:3] == [178, 182, 177]
    rgb = load_gan_data("digits", channels=3)
    assert rgb.dataset[0][0].shape == (3, 32, 32)


def test_max_images_subset_is_seeded(small_digits):
    again = load_gan_data("digits", max_images=160, seed=0)
    assert len(small_digits) == 160
    assert np.array_equal(labels_of(small_digits), labels_of(again))
    other = load_gan_data("digits", max_images=160, seed=1)
    assert not np.array_equal(labels_of(small_digits), labels_of(other))


def test_image_folders(color_dir, tmp_path):
    data = load_gan_data(color_dir)
    assert data.classes == ["blue", "green", "red"] and data.channels == 3 and len(data) == 36
    x, y, _ = data.dataset[0]
    assert x.shape == (3, 32, 32) and y == 0
    # Blue-tinted images: the blue channel is the brightest after resizing to 32x32 and scaling to [-1, 1].
    assert float(x[2].mean()) > float(x[0].mean()) + 0.5
    gray = load_gan_data(color_dir, channels=1)
    assert gray.dataset[0][0].shape == (1, 32, 32)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 50, 3), 60 * i, np.uint8)).save(flat / f"{i}.png")
    loose = load_gan_data(flat)
    assert loose.classes == ["images"] and len(loose) == 3


def test_torchvision_datasets_fail_clearly_offline(tmp_path):
    with pytest.raises(DataError, match=r"mnist is not available under .*pass --download"):
        load_gan_data("mnist", root=tmp_path)
    with pytest.raises(DataError, match=r"cifar10 is not available under .*--data digits"):
        load_gan_data("cifar10", root=tmp_path)
    with pytest.raises(DataError, match=r"celeba is not available under"):
        load_gan_data("celeba", root=tmp_path, attribute="smiling")


def test_celeba_attributes_and_data_errors(tmp_path):
    assert len(CELEBA_ATTRIBUTES) == 40
    assert resolve_attribute("smiling") == 31  # the report's id_att = 31 (Smiling)
    assert resolve_attribute("Bald") == 4  # id_att = 4
    assert resolve_attribute("15") == 15 == resolve_attribute("eyeglasses")  # (the report says 14: Double_Chin)
    with pytest.raises(ConfigError, match="unknown CelebA attribute 'smilling'.*Did you mean: smiling"):
        resolve_attribute("smilling")
    with pytest.raises(ConfigError, match="index must be 0..39"):
        resolve_attribute(40)
    with pytest.raises(ConfigError, match="--attribute only applies to --data celeba"):
        load_gan_data("digits", attribute="smiling")
    with pytest.raises(DataError, match="neither a dataset name .* Did you mean: mnist"):
        load_gan_data("mnsit")
    with pytest.raises(ConfigError, match="--channels must be 1 or 3"):
        load_gan_data("digits", channels=2)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no readable images"):
        load_gan_data(empty)
