import math

import pytest
import torch

from transferlab.errors import ConfigError
from transferlab.explain import (ExplainModel, PerceptualDistance, add_noise, default_layers, perceptual_experiment,
                                 pixel_distances, translate)
from transferlab.explain.model import HookTaps


@pytest.fixture(scope="module")
def digits():
    return ExplainModel.from_backbone("digits_cnn", "none", seed=0)


def _pair(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(3, 32, 32, generator=gen), torch.rand(3, 32, 32, generator=gen)


def test_pixel_distances_by_hand():
    a, b = torch.zeros(1, 2, 2), torch.tensor([[[1.0, -1.0], [0.5, 0.0]]])
    assert pixel_distances(a, b) == {"l1": pytest.approx(2.5 / 4), "l2": pytest.approx(2.25 / 4)}
    with pytest.raises(ConfigError, match="same shape"):
        pixel_distances(a, torch.zeros(1, 3, 3))


def test_zero_for_identical_images_and_symmetric(digits):
    metric = PerceptualDistance(digits, ["relu1", "relu5", "relu_fc2"])
    a, b = _pair()
    same = metric.compare(a, a.clone())
    assert set(same) == {"pixel_l1", "pixel_l2", "relu1_l1", "relu1_l2", "relu5_l1", "relu5_l2",
                         "relu_fc2_l1", "relu_fc2_l2"}
    assert all(v == 0.0 for v in same.values())
    ab, ba = metric.compare(a, b), metric.compare(b, a)
    assert ab == pytest.approx(ba, rel=1e-12, abs=0)
    assert all(v > 0 for v in ab.values())


def test_feature_distance_is_the_tapped_activations_distance(digits):
    metric = PerceptualDistance(digits, ["relu5"])
    a, b = _pair(1)
    with torch.no_grad():
        fa = digits.backbone.features[:17](digits.normalize(a[None]))  # up to features.16 = relu5
        fb = digits.backbone.features[:17](digits.normalize(b[None]))
    assert metric.compare(a, b)["relu5_l2"] == pytest.approx(float((fa - fb).double().pow(2).mean()), rel=1e-5)


def test_hook_taps_match_fx_taps(digits):
    x = digits.normalize(torch.rand(2, 3, 32, 32))
    fx = digits.taps(["relu5", "relu_fc1"])(x)
    hooked = HookTaps(digits.module, {"relu5": digits.layer_module("relu5"),
                                      "relu_fc1": digits.layer_module("relu_fc1")})(x)
    for layer in ("relu5", "relu_fc1"):
        torch.testing.assert_close(hooked[layer], fx[layer])
    assert all(not m._forward_hooks for m in digits.module.modules())


def test_translate_and_noise():
    x = torch.arange(12, dtype=torch.float32).view(1, 1, 3, 4)
    left = translate(x, 1)
    assert left[0, 0, 0].tolist() == [1, 2, 3, 3]  # moved left, right edge replicated
    assert translate(x, -1)[0, 0, 0].tolist() == [0, 0, 1, 2]
    img = torch.full((3, 8, 8), 0.5)
    noisy = add_noise(img, 0.1, seed=0)
    assert torch.equal(noisy, add_noise(img, 0.1, seed=0))
    assert 0.05 < float((noisy - img).std()) < 0.15 and float(noisy.min()) >= 0


def test_default_layers_spread_over_the_network(digits):
    assert default_layers(digits) == ["conv1", "conv3", "relu5", "relu_fc2"]
    assert default_layers(digits, 2) == ["conv1", "relu_fc2"]


def test_experiment_table(digits):
    photo = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    rows, images = perceptual_experiment(digits, photo, ["relu1", "relu5"], shift=1, sigma=0.1, seed=0)
    assert [(r["measure"], r["space"]) for r in rows] == [("L1", "pixels"), ("L2", "pixels"), ("L1", "relu1"),
                                                         ("L2", "relu1"), ("L1", "relu5"), ("L2", "relu5")]
    columns = ["original vs translated", "original vs noisy", "translated vs translated+noise", "translation/noise"]
    for row in rows:
        assert all(math.isfinite(row[c]) and row[c] > 0 for c in columns)
        assert row["translation/noise"] == pytest.approx(row[columns[0]] / row[columns[1]])
    assert rows[0][columns[0]] == pytest.approx(float((photo - translate(photo, 1)).abs().mean()))
    assert list(images) == ["original", "translated", "noisy", "translated+noise"]
    with pytest.raises(ConfigError, match="unknown layer 'relu9'"):
        perceptual_experiment(digits, photo, ["relu9"])


def test_experiment_on_the_full_resolution_image_in_0_255_units(digits):
    """Report 004 measured its 1920x2880 photo in grey levels: the full-size rows are that, exactly."""
    crop = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    full = torch.rand(1, 3, 40, 60, generator=torch.Generator().manual_seed(5))
    rows, _ = perceptual_experiment(digits, crop, ["relu1"], shift=1, sigma=0.1, seed=0, full=full)
    assert [r["space"] for r in rows] == ["pixels", "pixels", "relu1", "relu1", "pixels 0-255 (full 60x40)",
                                          "pixels 0-255 (full 60x40)", "relu1 (full 60x40)", "relu1 (full 60x40)"]
    moved = translate(full, 1)
    grey = (255 * full - 255 * moved).double()
    assert rows[4]["original vs translated"] == pytest.approx(float(grey.abs().mean()), rel=1e-6)
    assert rows[5]["original vs translated"] == pytest.approx(float(grey.pow(2).mean()), rel=1e-6)
    noisy = add_noise(full, 0.1, seed=0)
    assert rows[4]["original vs noisy"] == pytest.approx(255 * float((full - noisy).abs().double().mean()), rel=1e-6)
    taps = digits.taps(["relu1"])
    with torch.no_grad():
        a, b = taps(digits.normalize(full))["relu1"], taps(digits.normalize(moved))["relu1"]
    assert rows[6]["original vs translated"] == pytest.approx(float((a - b).abs().double().mean()), rel=1e-6)
    assert rows[:4] == perceptual_experiment(digits, crop, ["relu1"], shift=1, sigma=0.1, seed=0)[0]
