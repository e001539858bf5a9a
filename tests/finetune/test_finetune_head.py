"""One uniform head replacement for every registry backbone (built on the meta device: no memory, no time)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferlab.backbones import get_spec, list_backbones
from transferlab.errors import ConfigError
from transferlab.finetune import get_head, logits_of, replace_head

NAMES = list_backbones() + ["timm/resnet18"]


@pytest.mark.parametrize("name", NAMES)
def test_replace_head_sizes_output_to_the_classes(name):
    spec = get_spec(name)
    with torch.device("meta"):
        model = spec.build()
        old = get_head(model, spec)
        new = replace_head(model, spec, 7)
        x = torch.empty(2, 3, spec.preprocessing.crop_size, spec.preprocessing.crop_size)
    assert model.get_submodule(spec.head) is new
    assert type(new) is type(old) and isinstance(new, (nn.Linear, nn.Conv2d))  # SqueezeNet: a 1x1 Conv2d
    assert new.weight.shape[:2] == (7, old.weight.shape[1])
    assert new.weight.device.type == "meta"
    for mode in (True, False):  # training mode may return auxiliary outputs (Inception v3)
        model.train(mode)
        assert logits_of(model(x)).shape == (2, 7)


def test_head_must_be_a_linear_layer():
    spec = get_spec("digits_cnn")
    model = spec.build()
    model.classifier[6] = nn.Identity()
    with pytest.raises(ConfigError, match="is a Identity, expected nn.Linear"):
        replace_head(model, spec, 3)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        replace_head(spec.build(), spec, 1)


def test_logits_of_takes_the_main_output():
    t = torch.ones(1, 3)
    assert logits_of(t) is t
    assert logits_of((t, torch.zeros(1, 3))) is t
    from torchvision.models.inception import InceptionOutputs

    assert logits_of(InceptionOutputs(t, None)) is t
