"""One uniform head replacement for every registry backbone.

Every :class:`~transferlab.backbones.BackboneSpec` names its final classification layer with a dotted
module path (``spec.head``: ``classifier.6`` for VGG, ``fc`` for ResNet, ``heads.head`` for ViT...).
Fine-tuning replaces that ``nn.Linear`` (or SqueezeNet's 1x1 ``nn.Conv2d``, Iandola et al. 2016) by a new one with the same input size and one output per
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


def _is_head(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)
                                             and module.groups == 1)


def get_head(model: nn.Module, spec: BackboneSpec) -> nn.Linear | nn.Conv2d:
    """The module at ``spec.head``; raise :class:`ConfigError` if it is missing or not an ``nn.Linear``
    (or a 1x1 ``nn.Conv2d``, SqueezeNet's classifier)."""
    try:
        head = model.get_submodule(spec.head)
    except AttributeError as exc:
        raise ConfigError(f"backbone {spec.name} declares its head at {spec.head!r} but the network has no such "
                          "module; fix the registry entry's `head`") from exc
    if not _is_head(head):
        raise ConfigError(f"backbone {spec.name}: the head {spec.head!r} is a {type(head).__name__}, expected "
                          "nn.Linear or a 1x1 nn.Conv2d; fix the registry entry's `head`")
    return head


def replace_head(model: nn.Module, spec: BackboneSpec, num_classes: int) -> nn.Linear | nn.Conv2d:
    """Replace the final Linear at ``spec.head`` by ``Linear(in_features, num_classes)`` in place (a 1x1
    Conv2d head by ``Conv2d(in_channels, num_classes, 1)``).

    The new layer keeps the old one's device, dtype and bias setting and is freshly initialised
    (PyTorch's default initialisation, drawn from the global torch RNG: seed it first).
    """
    if int(num_classes) < 2:
        raise ConfigError(f"a classification head needs at least 2 classes; got {num_classes}")
    old = get_head(model, spec)
    if isinstance(old, nn.Conv2d):
        new = nn.Conv2d(old.in_channels, int(num_classes), 1, bias=old.bias is not None,
                        device=old.weight.device, dtype=old.weight.dtype)
    else:
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
