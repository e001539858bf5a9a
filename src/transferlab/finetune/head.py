"""One uniform head replacement for every registry backbone.

Every :class:`~transferlab.backbones.BackboneSpec` names its final classification layer with a dotted
module path (``spec.head``: ``classifier.6`` for VGG, ``fc`` for ResNet, ``heads.head`` for ViT...).
Fine-tuning replaces that ``nn.Linear`` by a new one with the same input size and one output per
target class (the "decapitate and add a new classification layer" of report 001, section 1.6.5;
Yosinski et al. 2014, "How transferable are features in deep neural networks?"). There is no
per-architecture code: adding a backbone to the registry is enough.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..backbones.spec import BackboneSpec
from ..errors import ConfigError


def get_head(model: nn.Module, spec: BackboneSpec) -> nn.Linear:
    """The module at ``spec.head``; raise :class:`ConfigError` if it is missing or not an ``nn.Linear``."""
    try:
        head = model.get_submodule(spec.head)
    except AttributeError as exc:
        raise ConfigError(f"backbone {spec.name} declares its head at {spec.head!r} but the network has no such "
                          "module; fix the registry entry's `head`") from exc
    if not isinstance(head, nn.Linear):
        raise ConfigError(f"backbone {spec.name}: the head {spec.head!r} is a {type(head).__name__}, expected "
                          "nn.Linear; fix the registry entry's `head`")
    return head


def replace_head(model: nn.Module, spec: BackboneSpec, num_classes: int) -> nn.Linear:
    """Replace the final Linear at ``spec.head`` by ``Linear(in_features, num_classes)`` in place.

    The new layer keeps the old one's device, dtype and bias setting and is freshly initialised
    (PyTorch's default initialisation, drawn from the global torch RNG: seed it first).
    """
    if int(num_classes) < 2:
        raise ConfigError(f"a classification head needs at least 2 classes; got {num_classes}")
    old = get_head(model, spec)
    new = nn.Linear(old.in_features, int(num_classes), bias=old.bias is not None,
                    device=old.weight.device, dtype=old.weight.dtype)
    parent_path, _, attr = spec.head.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, new)
    return new


def head_parameter_names(model: nn.Module, spec: BackboneSpec) -> set[str]:
    """Names (as in ``model.named_parameters()``) of the head's parameters."""
    get_head(model, spec)
    return {name for name, _ in model.named_parameters() if name.startswith(spec.head + ".")}


def logits_of(output: Any) -> torch.Tensor:
    """The main logits of a forward pass.

    Most networks return a tensor; some return a named tuple in training mode (Inception v3's
    ``InceptionOutputs(logits, aux_logits)``). The main output is ``.logits`` or the first element;
    auxiliary outputs are not part of the fine-tuning loss.
    """
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")


def has_auxiliary_outputs(spec: BackboneSpec) -> bool:
    """Whether the network returns more than its logits in training mode (checked on the meta device).

    DistributedDataParallel must then look for parameters the loss does not reach (Inception's
    auxiliary classifier); for every other network that search is skipped.
    """
    size = spec.preprocessing.crop_size
    with torch.device("meta"):
        model = spec.build().train()
        return not isinstance(model(torch.empty(2, 3, size, size)), torch.Tensor)
