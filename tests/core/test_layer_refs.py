"""One layer reference (LayerRef) and the one tap service: resolution, errors, composite cells, no side effects."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferlab.backbones import (LayerRef, get_spec, hook_point, layer_shapes, list_backbones, load_backbone,
                                   make_taps, resolve_layer)
from transferlab.errors import ConfigError


def test_friendly_names_nodes_and_module_paths_resolve_once():
    vgg = get_spec("vgg16")
    assert resolve_layer(vgg, "relu7") == LayerRef("relu7", "classifier.4", "classifier.4", (4096,))
    assert resolve_layer(vgg, "classifier.4").node == "classifier.4"  # the graph node itself
    assert resolve_layer(vgg, "relu5_3").shape == (512, 14, 14) and resolve_layer(vgg, "pool5").shape == (512, 7, 7)
    resnet = get_spec("resnet18")
    assert resolve_layer(resnet, "layer4") == LayerRef("layer4", "layer4.1.relu_1", "layer4", (512, 7, 7))
    # function nodes have no module to hook: the second call of a ReLU module, torch.flatten
    assert resolve_layer(resnet, "layer3.1.relu_1") == LayerRef("layer3.1.relu_1", "layer3.1.relu_1", None, (256, 14, 14))
    assert resolve_layer(resnet, "pre_logits") == LayerRef("pre_logits", "flatten", None, (512,))
    assert resolve_layer(resnet, "layer3.1.relu").module is None  # that module runs twice: a hook would fire twice
    assert resolve_layer(resnet, "logits").shape == (1000,)
    model = load_backbone("resnet18", "none", num_classes=7).model
    assert resolve_layer(resnet, "logits", model).shape == (7,)  # the model sets the head's size
    assert resolve_layer(resnet, "layer1", shape=False).shape is None


def test_composite_cells_are_layers():
    vgg = get_spec("vgg16")
    cell = resolve_layer(vgg, "relu5_1>fc6")
    assert cell.node == "features.25>classifier.0" and cell.module is None and cell.shape == (4096,)
    assert cell.composite and [p.name for p in cell.parts] == ["relu5_1", "fc6"]
    assert resolve_layer(vgg, "features.30>classifier.4").shape == (4096,)  # node names work as parts too
    assert resolve_layer(get_spec("digits_cnn"), "relu5>logits").shape == (10,)
    assert layer_shapes(vgg, ["pool4>relu7", "relu7"]) == {"pool4>relu7": (4096,), "relu7": (4096,)}


@pytest.mark.parametrize(("backbone", "layer", "message"), [
    ("vgg16", "relu8", r"^unknown layer 'relu8' for vgg16; expected one of conv1_1, relu1_1, .* any graph node name "
                       r"or module path, a cell <conv>><classifier> such as pool5>fc6\. Did you mean: relu7"),
    ("resnet18", "layer9", r"^unknown layer 'layer9' for resnet18; expected one of conv1, .*Run `transferlab layers "
                           r"resnet18`"),
    ("resnet18", "layer4>fc", r"composite cells <conv>><classifier> need a network made of `features` and "
                              r"`classifier` blocks .*; resnet18 is not one"),
    ("vgg16", "relu3_1>fc6", r"a cell starts at a `features` layer with 512 channels, the classifier's input "
                             r"\(relu4_1, .*\); got 'relu3_1'"),
    ("vgg16", "relu5_1>relu5_2", r"a cell ends at a classifier layer \(fc6, relu6, fc7, relu7, fc8\); got 'relu5_2'"),
    ("vgg16", "relu5_1>fc9", r"^unknown layer 'fc9' for vgg16"),
    ("vgg16", "", r"a layer name must be a non-empty string"),
])
def test_layer_errors_are_one_line(backbone, layer, message):
    with pytest.raises(ConfigError, match=message) as error:
        resolve_layer(get_spec(backbone), layer)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", list_backbones())
def test_every_cut_point_of_every_backbone_resolves_on_meta(name):
    spec = get_spec(name)
    shapes = layer_shapes(spec)
    for layer in spec.cut_points:
        ref = resolve_layer(spec, layer)
        assert ref.name == layer and ref.shape == shapes[layer] and ref.node
        assert ref.module is None or ref.module == spec.cut_points[layer]


def _state(model: nn.Module):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: (m.training, getattr(m, "inplace", None), len(m._forward_hooks)) for n, m in model.named_modules()})


def test_taps_leave_the_callers_model_untouched_and_values_right():
    model = load_backbone("alexnet", "none", seed=0).model.eval()
    states, flags = _state(model)
    assert flags["classifier.2"][1] is True  # relu6 works in place in the caller's network
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    taps = make_taps(get_spec("alexnet"), model, ["fc6", "relu6", "relu5>fc6", "relu5>relu6"])
    with torch.no_grad():
        out = taps(x)
        fc6 = model.classifier[1](torch.flatten(model.avgpool(model.features(x)), 1))
    after_states, after_flags = _state(model)
    assert after_flags == flags and all(torch.equal(states[k], after_states[k]) for k in states)
    torch.testing.assert_close(out["fc6"], fc6)
    assert (out["fc6"] < 0).any() and (out["relu5>fc6"] < 0).any()  # not overwritten by the ReLU after them
    torch.testing.assert_close(out["relu6"], fc6.relu())
    torch.testing.assert_close(out["relu5>relu6"], out["relu5>fc6"].relu())
    with torch.no_grad():  # a cell: relu5's 13x13 map averaged to the classifier's 6x6 grid, then the pretrained fc6
        relu5 = model.features[:12](x)
        cell = model.classifier[1](torch.flatten(nn.functional.adaptive_avg_pool2d(relu5, (6, 6)), 1))
    torch.testing.assert_close(out["relu5>fc6"], cell)


def test_hook_points_reach_function_nodes():
    backbone = load_backbone("resnet18", "none", seed=0)
    taps = make_taps(backbone.spec, backbone.model.eval(), ["layer3.1.relu_1", "pre_logits"])
    seen = {}
    handle = hook_point(taps, "layer3.1.relu_1").register_forward_hook(lambda m, i, o: seen.setdefault("a", o))
    try:
        with torch.no_grad():
            out = taps(torch.randn(1, 3, 64, 64))
    finally:
        handle.remove()
    assert seen["a"] is out["layer3.1.relu_1"] and out["pre_logits"].shape == (1, 512)
