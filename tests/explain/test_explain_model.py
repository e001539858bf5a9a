import numpy as np
import pytest
import torch

from transferlab.errors import ConfigError
from transferlab.explain import ExplainModel, GradCAM, PerceptualDistance, SaliencyMap


def test_registry_backbone_model_names_and_normalisation(photos):
    model = ExplainModel.from_backbone("digits_cnn", "none", seed=0)
    assert model.classes == [str(d) for d in range(10)]
    pixels = model.load_pixels([photos["chelsea"], photos["coffee"]])
    assert pixels.shape == (2, 3, 32, 32) and 0 <= float(pixels.min()) and float(pixels.max()) <= 1
    mean = torch.tensor(model.preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.preprocessing.std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model.pixel_module(pixels), model.module((pixels - mean) / std))
    torch.testing.assert_close(model.denormalize(model.normalize(pixels)), pixels)
    index, conf = model.predict(pixels)
    assert index.shape == (2,) and bool(((conf > 0) & (conf <= 1)).all())


def test_imagenet_backbone_with_random_weights_keeps_imagenet_names():
    model = ExplainModel.from_backbone("resnet18", "none")
    assert len(model.classes) == 1000 and model.classes[281] == "tabby"
    assert model.gradcam_layer == "layer4" and model.layer_module("layer4") is model.backbone.layer4


def test_unknown_layer_lists_cut_points():
    model = ExplainModel.from_backbone("digits_cnn", "none")
    with pytest.raises(ConfigError, match=r"unknown layer 'relu9' for digits_cnn; expected one of conv1, relu1, .*Did you mean: relu5"):
        model.layer_module("relu9")


def _linear_model(tmp_path, layer, n_features):
    from sklearn.linear_model import LogisticRegression

    from transferlab.backbones import load_backbone
    from transferlab.classify.linear_model import LinearProbeModel

    rng = np.random.default_rng(0)
    clf = LogisticRegression().fit(rng.normal(size=(30, n_features)), np.arange(30) % 3)
    probe = LinearProbeModel(load_backbone("digits_cnn", "none"), layer, "avg", True, ["a", "b", "c"], clf,
                             "none", 0, "logreg")
    return probe.save(tmp_path / f"probe-{layer}")


def test_saved_linear_model_is_explained_with_its_classes(tmp_path):
    model = ExplainModel.from_saved_model(_linear_model(tmp_path, "relu_fc2", 128))
    assert model.classes == ["a", "b", "c"] and model.gradcam_layer == "features.16"
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cam = GradCAM(model).attribute(pixels, target="b")
    assert cam.maps.shape == (2, 32, 32) and cam.targets.tolist() == [1, 1]
    sal = SaliencyMap(model).attribute(pixels)
    assert float(sal.maps.max()) > 0
    distances = PerceptualDistance(model, ["relu5"]).compare(pixels[0], pixels[1])
    assert distances["relu5_l2"] > 0


def test_saved_linear_model_at_an_early_layer_refuses_later_layers(tmp_path):
    model = ExplainModel.from_saved_model(_linear_model(tmp_path, "relu2", 32))
    pixels = torch.rand(1, 3, 32, 32)
    with pytest.raises(ConfigError, match="'features.16' is not computed by model:"):
        GradCAM(model).attribute(pixels)
    with pytest.raises(ConfigError, match="relu5 are not computed"):
        PerceptualDistance(model, ["relu5"]).compare(pixels[0], pixels[0])
    assert GradCAM(model, "relu1").attribute(pixels).maps.shape == (1, 32, 32)


def test_a_cut_point_that_is_not_a_module_gets_its_own_message():

    model = ExplainModel.from_backbone("resnet18", "none")
    with pytest.raises(ConfigError, match=r"cut point 'pre_logits' of resnet18 is the graph node 'flatten', a "
                                          r"function rather than a module.*layer4, avgpool, logits"):
        GradCAM(model, "pre_logits")
