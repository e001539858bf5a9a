"""Judge-based metrics: Fréchet distance, class distribution, spread, FID availability message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlab.errors import DataError
from transferlab.generate import class_distribution, frechet_distance, inception_fid
from transferlab.generate.metrics import spread


def test_frechet_distance_known_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # Same covariance, means 2 apart on one axis: distance = |mu_a - mu_b|^2 = 4.
    assert frechet_distance(a, a + np.array([2.0, 0, 0])) == pytest.approx(4.0, abs=1e-9)
    # N(0, I) vs N(0, 4I) in 3-d: 3 * (1 + 4 - 2*2) = 3 (sampling error ~ 0.1).
    b = rng.normal(size=(4000, 3)) * 2
    assert frechet_distance(a, b) == pytest.approx(3.0, abs=0.25)
    with pytest.raises(DataError, match="equal d"):
        frechet_distance(a, a[:, :2])


def test_class_distribution_and_spread():
    collapsed = class_distribution(np.full(50, 3), 10)
    assert collapsed["class_entropy"] == 0.0 and collapsed["max_class_share"] == 1.0
    assert collapsed["classes_covered"] == 1
    uniform = class_distribution(np.repeat(np.arange(10), 5), 10)
    assert uniform["class_entropy"] == pytest.approx(1.0) and uniform["max_class_share"] == pytest.approx(0.1)
    points = np.array([[0.0, 0], [2, 0], [10, 10], [10, 12]])
    assert spread(points, np.array([0, 0, 1, 1])) == pytest.approx(1.0)
    assert spread(np.ones((5, 2))) == 0.0


def test_inception_fid_says_why_when_unavailable():
    x = torch.zeros(4, 1, 32, 32)
    try:
        import torchmetrics  # noqa: F401
    except ImportError:
        value, why = inception_fid(x, x)
        assert value is None
        assert "FID (Inception) not computed" in why and "torchmetrics" in why
    else:  # pragma: no cover - only where torchmetrics is installed
        pytest.skip("torchmetrics installed: FID depends on its downloadable Inception weights")


def test_judge_metrics_on_real_images_are_good(small_digits):
    """Real images scored as if generated: recognition = the judge's accuracy, low Fréchet distance."""
    from transferlab.generate.metrics import _stack, train_judge

    judge = train_judge(small_digits, epochs=3, seed=0)
    x, y = _stack(small_digits.dataset, np.arange(len(small_digits)))
    pred, feats = judge.predict(x)
    noise = torch.rand_like(x) * 2 - 1
    _, noise_feats = judge.predict(noise)
    # Real training images sit much closer to the held-out real images than uniform noise does
    # (measured: 0.071 vs 1.25).
    assert frechet_distance(judge.real_features, feats) < frechet_distance(judge.real_features, noise_feats) / 3
    assert (pred == y.numpy()).mean() > 0.3  # measured 0.42: 128 training images, 3 epochs, a weak judge
