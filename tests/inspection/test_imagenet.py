"""ImageNet top-k predictions: names, order, probabilities, and the no-normalisation / train-mode variants."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torchvision.models import get_model_weights

from transferlab.backbones import get_spec, load_backbone
from transferlab.data import image_transform, load_rgb, pil_to_tensor, resize_and_crop
from transferlab.errors import DataError
from transferlab.inspection.imagenet import plot_predictions, predict_imagenet


@pytest.fixture(scope="module")
def alexnet():
    """Random AlexNet fed 64x64 crops (its adaptive pooling accepts them): ~15x cheaper than 224x224.

    The CLI test runs the real 224 preprocessing once."""
    net = load_backbone("alexnet", "none", seed=0)
    return replace(net, preprocessing=replace(net.preprocessing, resize_size=73, crop_size=64))


@pytest.fixture(scope="module")
def results(alexnet, photos):
    """Both photos: eval, no normalisation and 3 train-mode passes (seed 5), computed once."""
    return predict_imagenet(alexnet, photos, k=5, normalize_variant=True, train_passes=3, seed=5)


@pytest.mark.parametrize("name", ["vgg16", "alexnet", "resnet18"])
def test_class_names_are_imagenet_1000(name):
    spec = get_spec(name)
    assert len(spec.categories) == 1000
    assert list(spec.categories) == get_model_weights(name).DEFAULT.meta["categories"]
    assert spec.categories[281] == "tabby" and spec.categories[0] == "tench"


def _reference_probs(backbone, path, normalize=True):
    img = load_rgb(path)
    pre = backbone.preprocessing
    x = image_transform(pre)(img) if normalize else pil_to_tensor(resize_and_crop(pre)(img))
    with torch.no_grad():
        return torch.softmax(backbone.model(x.unsqueeze(0)), dim=1)[0]


def test_top5_names_order_and_probabilities(alexnet, photos, results):
    assert [r.image for r in results] == [str(p) for p in photos]
    names = alexnet.spec.categories
    for result, path in zip(results, photos):
        top = result.eval
        assert len(top.indices) == 5
        assert list(top.probabilities) == sorted(top.probabilities, reverse=True)
        assert list(top.names) == [names[i] for i in top.indices]
        probs = _reference_probs(alexnet, path)
        assert list(top.indices) == probs.topk(5).indices.tolist()
        assert torch.allclose(torch.tensor(top.probabilities), probs.topk(5).values, atol=1e-6)
        raw = _reference_probs(alexnet, path, normalize=False)
        assert list(result.no_normalize.indices) == raw.topk(5).indices.tolist()
        assert not torch.allclose(probs, raw)  # the normalisation changes what the network sees


def test_train_mode_varies_is_seeded_and_leaves_the_model_unchanged(alexnet, photos, results):
    first = results[0]
    before = torch.tensor(first.eval.probabilities)
    rng = torch.get_rng_state()
    again = predict_imagenet(alexnet, photos, k=5, train_passes=3, seed=5)[0]
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's random state is untouched
    assert [p.probabilities for p in first.train_passes] == [p.probabilities for p in again.train_passes]
    assert len({p.probabilities for p in first.train_passes}) == 3  # dropout: every pass differs
    assert first.train_passes[0].probabilities != first.eval.probabilities
    assert not alexnet.model.training
    assert torch.equal(torch.tensor(again.eval.probabilities), before)  # eval after train mode: unchanged
    summary = first.train_summary()
    assert summary["passes"] == 3 and 0.0 <= summary["top1_agreement"] <= 1.0


def test_train_mode_restores_batchnorm_statistics(photos):
    net = load_backbone("digits_cnn", "none", seed=0)  # BatchNorm2d + dropout, 32x32 input
    buffers = {k: v.clone() for k, v in net.model.named_buffers()}
    result = predict_imagenet(net, photos, k=3, train_passes=2)[0]
    assert len(result.train_passes) == 2 and not net.model.training
    assert all(torch.equal(v, buffers[k]) for k, v in net.model.named_buffers())
    assert set(result.eval.names) <= set(net.spec.categories)


def test_names_fall_back_when_the_head_does_not_match(photos):
    net = load_backbone("alexnet", "none", seed=0, num_classes=7)
    result = predict_imagenet(net, photos[:1], k=10)[0]
    assert len(result.eval.names) == 7 and set(result.eval.names) == {f"class_{i}" for i in range(7)}


def test_missing_image(alexnet, tmp_path):
    with pytest.raises(DataError, match="image .*nope.jpg does not exist"):
        predict_imagenet(alexnet, [tmp_path / "nope.jpg"])
    with pytest.raises(DataError, match="no image given"):
        predict_imagenet(alexnet, [])


def test_plot(photos, results, tmp_path):
    path = plot_predictions(results, [load_rgb(p) for p in photos], tmp_path / "p.png")
    assert path.stat().st_size > 10_000
    rows = [row for r in results for row in r.rows()]
    assert len(rows) == 2 * 5 * (1 + 1 + 3)
