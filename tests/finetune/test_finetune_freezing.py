"""Freezing policies: frozen parameters (and frozen BatchNorm statistics) do not move, the others do."""

from __future__ import annotations

import pytest
import torch

from transferlab.backbones import get_spec, load_backbone
from transferlab.errors import ConfigError
from transferlab.finetune import FreezePolicy, apply_freeze, parameter_groups, parse_freeze, replace_head
from transferlab.finetune.freezing import frozen_norm_modules, set_train_mode


def one_step(name: str, policy: str, size: int = 32, lr: float = 0.1):
    """Build ``name`` with a 3-class head, freeze by ``policy``, take one SGD step; return before/after states."""
    bb = load_backbone(name, weights="none", seed=0)
    replace_head(bb.model, bb.spec, 3)
    frozen = apply_freeze(bb.model, bb.spec, policy)
    model = bb.model
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(parameter_groups(model, bb.spec, lr), lr=lr, momentum=0.9)
    set_train_mode(model)
    torch.manual_seed(0)
    x, y = torch.randn(4, 3, size, size), torch.tensor([0, 1, 2, 0])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    after = model.state_dict()
    return bb, frozen, before, after


def changed(before, after, key) -> bool:
    return not torch.equal(before[key], after[key])


def test_all_but_head_moves_only_the_head_and_keeps_batchnorm_statistics():
    bb, frozen, before, after = one_step("digits_cnn", "all-but-head")
    params = {n for n, _ in bb.model.named_parameters()}
    assert params - frozen == {"classifier.6.weight", "classifier.6.bias"}
    for key in before:
        if key.startswith("classifier.6."):
            assert changed(before, after, key), key
        else:  # weights and BatchNorm running statistics alike
            assert not changed(before, after, key), key


def test_none_moves_every_parameter():
    bb, frozen, before, after = one_step("digits_cnn", "none")
    assert frozen == set()
    for name, _ in bb.model.named_parameters():
        assert changed(before, after, name), name
    assert changed(before, after, "features.1.running_mean")


@pytest.mark.parametrize("layer, last_frozen_module", [("pool2", "features.13"), ("features.13", "features.13"),
                                                       ("relu_fc1", "classifier.2")])
def test_up_to_freezes_the_input_side_through_the_layer(layer, last_frozen_module):
    bb, frozen, before, after = one_step("digits_cnn", f"up-to:{layer}")
    order = [n for n, _ in bb.model.named_modules()]
    bound = order.index(last_frozen_module)
    for name, _ in bb.model.named_parameters():
        is_frozen = order.index(name.rpartition(".")[0]) <= bound
        assert (name in frozen) == is_frozen, name
        assert changed(before, after, name) == (not is_frozen), name


def test_up_to_on_resnet18_uses_the_registry_cut_point_names():
    bb, frozen, before, after = one_step("resnet18", "up-to layer3")
    assert "layer3.1.bn2.weight" in frozen and "layer4.0.conv1.weight" not in frozen and "conv1.weight" in frozen
    assert not changed(before, after, "layer3.1.conv2.weight")
    assert not changed(before, after, "layer3.1.bn2.running_var")  # frozen BN stays in eval mode
    assert changed(before, after, "layer4.1.conv2.weight") and changed(before, after, "fc.weight")
    assert bb.model.get_submodule("layer3.1.bn2") in frozen_norm_modules(bb.model)


def test_parse_freeze_forms_and_errors():
    assert parse_freeze("all-but-head") == FreezePolicy("all-but-head")
    for text in ("up-to:layer3", "up-to layer3", "up-to=layer3"):
        assert parse_freeze(text) == FreezePolicy("up-to", "layer3")
    assert str(parse_freeze("up-to layer3")) == "up-to:layer3"
    with pytest.raises(ConfigError, match="unknown --freeze value 'all-but-hed'.*Did you mean: all-but-head"):
        parse_freeze("all-but-hed")
    with pytest.raises(ConfigError, match="unknown --freeze value 'up-to:'"):
        parse_freeze("up-to:")


def test_up_to_errors_name_the_valid_layers():
    bb = load_backbone("resnet18", weights="none")
    replace_head(bb.model, bb.spec, 3)
    with pytest.raises(ConfigError, match=r"up-to:layer5: unknown layer 'layer5' for resnet18; expected one of "
                                          r"conv1, pool1, layer1, layer2"):  # the one layer reference's message
        apply_freeze(bb.model, bb.spec, "up-to:layer5")
    with pytest.raises(ConfigError, match="function in the graph"):
        apply_freeze(bb.model, bb.spec, "up-to:pre_logits")  # torch.flatten, not a module
    with pytest.raises(ConfigError, match="would freeze the new head"):
        apply_freeze(bb.model, bb.spec, "up-to:fc")
    digits = load_backbone("digits_cnn", weights="none")
    with pytest.raises(ConfigError, match=r"a composite cell is a feature layer.*\(relu5 or fc1\)"):
        apply_freeze(digits.model, digits.spec, "up-to:relu5>fc1")


def test_discriminative_learning_rates_are_parameter_groups():
    spec = get_spec("digits_cnn")
    model = spec.build()
    replace_head(model, spec, 4)
    apply_freeze(model, spec, "up-to:pool1")
    groups = parameter_groups(model, spec, lr=0.1, backbone_lr_factor=0.1)
    assert [g["name"] for g in groups] == ["head", "backbone"]
    assert groups[0]["lr"] == 0.1 and groups[1]["lr"] == pytest.approx(0.01)
    assert {id(p) for p in groups[0]["params"]} == {id(model.classifier[6].weight), id(model.classifier[6].bias)}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g["params"]} == trainable
    with pytest.raises(ConfigError, match="backbone-lr-factor must be positive"):
        parameter_groups(model, spec, lr=0.1, backbone_lr_factor=0)
