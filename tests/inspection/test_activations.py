"""Activation maps at conv1_1 of VGG16 (random weights) on skimage's cat, and the first-layer filters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from transferlab.backbones import load_backbone
from transferlab.data import image_transform, load_rgb
from transferlab.errors import ConfigError, DataError
from transferlab.inspection.activations import (activation_maps, filter_tiles, first_conv, parse_channels,
                                                plot_activations, plot_filters)


@pytest.fixture(scope="module")
def vgg16():
    return load_backbone("vgg16", "none", seed=0)


@pytest.fixture(scope="module")
def reference(vgg16, photos):
    """conv1_1 of the cat computed by hand: F.conv2d with the first layer's weights."""
    x = image_transform(vgg16.preprocessing)(load_rgb(photos[0])).unsqueeze(0)
    conv = vgg16.model.features[0]
    with torch.no_grad():
        return F.conv2d(x, conv.weight, conv.bias, padding=1)[0]


def test_top_channels_by_mean(vgg16, photos, reference):
    result = activation_maps(vgg16, photos[0], "conv1_1", top=8)
    means = reference.mean(dim=(1, 2))
    assert result.shape == (64, 224, 224)
    assert result.channels == means.argsort(descending=True)[:8].tolist()
    assert result.maps.shape == (8, 224, 224)
    np.testing.assert_allclose(result.maps, reference[result.channels].numpy(), atol=1e-4)
    np.testing.assert_allclose([s["mean"] for s in result.stats], means.numpy(), atol=1e-5)
    ranked = result.ranked_stats()
    assert [r["channel"] for r in ranked[:8]] == result.channels and all(r["shown"] for r in ranked[:8])
    assert len(ranked) == 64 and not any(r["shown"] for r in ranked[8:])
    assert result.input_image.shape == (224, 224, 3) and 0.0 <= result.input_image.min() <= result.input_image.max() <= 1.0


def test_chosen_channels_and_relu_layer(vgg16, photos, reference):
    result = activation_maps(vgg16, photos[0], "relu1_1", channels=[0, 5, 7])
    assert result.channels == [0, 5, 7] and result.selection == "chosen"
    np.testing.assert_allclose(result.maps, reference[[0, 5, 7]].clamp_min(0).numpy(), atol=1e-4)
    assert all(s["min"] >= 0 for s in result.stats)


def test_first_layer_filters(vgg16, tmp_path):
    name, conv = first_conv(vgg16.model)
    assert name == "features.0" and conv.weight.shape == (64, 3, 3, 3)
    tiles = filter_tiles(conv)
    assert tiles.shape == (64, 3, 3, 3)  # (filter, kh, kw, rgb)
    np.testing.assert_allclose(tiles.reshape(64, -1).min(1), 0.0, atol=1e-6)
    np.testing.assert_allclose(tiles.reshape(64, -1).max(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(tiles[5, 1, 2], (conv.weight[5, :, 1, 2] - conv.weight[5].min()).detach().numpy()
                               / (conv.weight[5].max() - conv.weight[5].min()).item(), atol=1e-6)
    assert plot_filters(tiles, tmp_path / "f.png").stat().st_size > 2_000


def test_plot(vgg16, photos, tmp_path):
    result = activation_maps(vgg16, photos[0], "conv1_1", top=5)
    assert plot_activations(result, tmp_path / "a.png").stat().st_size > 10_000


def test_errors(vgg16, photos, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown layer 'conv1_x' for vgg16; expected one of conv1_1, relu1_1"):
        activation_maps(vgg16, photos[0], "conv1_x")
    with pytest.raises(ConfigError, match=r"layer 'fc6' of vgg16 has output shape \(4096,\), not a \(C, H, W\) map"):
        activation_maps(vgg16, photos[0], "fc6")
    with pytest.raises(ConfigError, match=r"has channels 0..63; got \[64\]"):
        activation_maps(vgg16, photos[0], "conv1_1", channels=[1, 64])
    with pytest.raises(DataError, match="does not exist"):
        activation_maps(vgg16, tmp_path / "missing.png", "conv1_1")
    with pytest.raises(ConfigError, match="comma-separated channel numbers"):
        parse_channels("0,a")
    assert parse_channels("0, 5,7") == [0, 5, 7] and parse_channels(None) is None
