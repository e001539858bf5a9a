"""A cut point that `extract` accepts works in a saved probe's torch module and in Grad-CAM on it (one tap service)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlab.backbones import make_taps
from transferlab.classify import LinearOptions, fit_probe, load_model
from transferlab.data import image_transform, load_rgb
from transferlab.explain import ExplainModel, GradCAM
from transferlab.features import l2_normalize, pool
from transferlab.pipeline import ExtractionOptions, features_for

LAYERS = ["layer3.1.relu_1", "pre_logits"]  # function nodes: a ReLU module's second call, torch.flatten


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    from tests_helpers import make_color_folder

    root = tmp_path_factory.mktemp("probe_layers")
    data = make_color_folder(root / "colors", per_class=6)
    options = ExtractionOptions(backbone="resnet18", weights="none", layers=LAYERS, train_per_class=3, pooling="avg",
                                workers=0, progress=False, cache_dir=root / "cache")
    result = features_for(data, options)  # what `extract -l layer3.1.relu_1 -l pre_logits` computes
    folders = {}
    for layer in LAYERS:
        model, _ = fit_probe(result.features[layer], result.backbone, layer, options, LinearOptions())
        folders[layer] = model.save(root / layer.replace(".", "_"))
    return folders, result.features[LAYERS[0]].paths_test[:3]


def _head(module, features: torch.Tensor) -> torch.Tensor:
    v = l2_normalize(pool(features, module.pooling))
    return v @ module.coef.T + module.intercept


def _manual_gradcam(scores_of, activation: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    scores = scores_of(activation)
    grads, = torch.autograd.grad(scores[torch.arange(len(targets)), targets].sum(), activation)
    return (grads.mean(dim=(2, 3), keepdim=True) * activation).sum(1).relu()


@pytest.mark.parametrize("layer", LAYERS)
def test_saved_probe_module_gives_the_extracted_features_scores(probes, layer):
    folders, paths = probes
    saved = load_model(folders[layer])
    x = torch.stack([image_transform(saved.preprocessing)(load_rgb(p)) for p in paths])
    with torch.no_grad():
        torch_scores = saved.as_torch_module()(x).numpy()
    scores, kept, _ = saved.predict_scores(paths, use_cache=False)
    assert kept == [0, 1, 2]
    np.testing.assert_allclose(torch_scores, scores, rtol=1e-4, atol=1e-4)


def test_gradcam_on_a_saved_probe_at_its_function_node_layer(probes):
    folders, paths = probes
    explain = ExplainModel.from_saved_model(folders["layer3.1.relu_1"])
    pixels = explain.load_pixels(paths)
    cam = GradCAM(explain, "layer3.1.relu_1")
    result = cam.attribute(pixels)
    assert result.maps.shape == (3, 224, 224) and cam.last_low_res_.shape == (3, 14, 14)
    probe = explain.module
    network = load_model(folders["layer3.1.relu_1"]).backbone
    activation = make_taps(network.spec, network.model.eval(), ["layer3.1.relu_1"])(explain.normalize(pixels))
    expected = _manual_gradcam(lambda a: _head(probe, a), activation["layer3.1.relu_1"], result.targets)
    torch.testing.assert_close(cam.last_low_res_, expected.detach(), rtol=1e-4, atol=1e-6)


def test_gradcam_on_a_pre_logits_probe_at_the_default_layer(probes):
    folders, paths = probes
    explain = ExplainModel.from_saved_model(folders["pre_logits"])
    assert explain.gradcam_layer == "layer4"
    pixels = explain.load_pixels(paths)
    cam = GradCAM(explain)
    result = cam.attribute(pixels)
    backbone = load_model(folders["pre_logits"]).backbone
    network = backbone.model.eval()
    activation = make_taps(backbone.spec, network, ["layer4"])(explain.normalize(pixels))["layer4"]
    expected = _manual_gradcam(lambda a: _head(explain.module, network.avgpool(a).flatten(1)), activation,
                               result.targets)
    assert cam.last_low_res_.shape == (3, 7, 7)
    torch.testing.assert_close(cam.last_low_res_, expected.detach(), rtol=1e-4, atol=1e-6)
