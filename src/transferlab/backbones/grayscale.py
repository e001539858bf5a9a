"""Grayscale images on RGB networks: the alternatives of report 002, question 9.

* ``duplicate`` (the default everywhere): the gray channel copied to R, G and B, normalised with the
  weights' per-channel mean and std.
* ``sum-filters``: a 1-channel network whose first convolution's weights are the pretrained filters
  summed over their RGB input channels, fed the gray image normalised with the mean of the channel
  means and the mean of the channel stds. When the weights' mean and std are equal across channels
  this is exactly ``duplicate`` (tested), with a third of the first layer's multiply-accumulates.
* ``learnt``: a learnt 1 -> 3 convolution (1x1) in front of the first convolution, trained with the
  network when fine-tuning. It starts as exactly ``duplicate`` (weight ``s/s_c``, bias ``(m - m_c)/s_c``
  for the gray image normalised with ``m, s``), so training starts from the pretrained network's behaviour.

The first convolution is found through the spec's traced graph (the one
:func:`~transferlab.backbones.layers.resolve_layer` uses): the first graph node that is a hookable ``nn.Conv2d`` module with 3 input channels, or whose first
convolution is (a traced leaf block such as ConvNeXt's ``features.0``).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import ConfigError, did_you_mean
from .spec import BackboneSpec, Preprocessing

if TYPE_CHECKING:
    from .loading import Backbone

GRAYSCALE_MODES = ("duplicate", "sum-filters", "learnt")
EXTRACTION_MODES = ("duplicate", "sum-filters")  # learnt needs training
ADAPTER = "0"  # the learnt 1 -> 3 convolution inside the Sequential that replaces the first convolution


def check_mode(mode: str, allowed: tuple[str, ...] = GRAYSCALE_MODES) -> str:
    if mode not in allowed:
        extra = " (learnt needs training: use it with `transferlab finetune`)" \
            if mode == "learnt" and mode not in allowed else ""
        raise ConfigError(f"--grayscale {mode!r} is not one of {', '.join(allowed)}{extra}."
                          f"{did_you_mean(mode, list(allowed))}")
    return mode


def first_conv(model: nn.Module, spec: BackboneSpec) -> tuple[str, nn.Conv2d]:
    """``(module path, module)`` of the network's first convolution on the RGB input."""
    from .layers import _graph

    graph = _graph(spec, model)
    for node in graph.nodes:  # graph order (a friendly cut point such as ResNet's conv1 may name its relu)
        path = graph.hookable(node)
        if path is None:
            continue
        for sub, module in model.get_submodule(path).named_modules():  # a leaf node may hold it (ConvNeXt's stem)
            if isinstance(module, nn.Conv2d):
                if module.in_channels == 3 and module.groups == 1:
                    return f"{path}.{sub}" if sub else path, module
                break
    raise ConfigError(f"backbone {spec.name} has no first nn.Conv2d on its 3 input channels; --grayscale "
                      "sum-filters/learnt need one: use --grayscale duplicate")


def gray_preprocessing(pre: Preprocessing) -> Preprocessing:
    """One channel: the mean of the channel means and of the channel stds (gray images are converted with
    PIL's ``convert("L")``, which keeps a gray image's values exactly)."""
    return replace(pre, mean=(sum(pre.mean) / len(pre.mean),), std=(sum(pre.std) / len(pre.std),))


def input_channels(pre: Preprocessing) -> int:
    """Channels a network fed with this preprocessing takes (1 for the grayscale modes, else 3)."""
    return len(pre.mean)


def _set(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent_path) if parent_path else model, attr, module)


def sum_filters(model: nn.Module, spec: BackboneSpec) -> str:
    """Replace the first convolution by a 1-channel one whose weights are summed over RGB; in place.

    Returns the convolution's module path. The new module is a copy of the old one (same class, so timm's
    ``Conv2dSame`` keeps its padding), with ``in_channels=1``.
    """
    path, conv = first_conv(model, spec)
    new = copy.deepcopy(conv)
    new.in_channels = 1
    new.weight = nn.Parameter(conv.weight.detach().sum(dim=1, keepdim=True).clone(),
                              requires_grad=conv.weight.requires_grad)
    _set(model, path, new)
    return path


def add_learnt_adapter(model: nn.Module, spec: BackboneSpec, pre: Preprocessing) -> str:
    """Put a learnt 1x1 convolution 1 -> 3 in front of the first convolution; in place.

    The first convolution at ``path`` becomes ``nn.Sequential(adapter, conv)`` (so its parameters are
    ``path.1.*`` and the adapter's ``path.0.*``). The adapter starts as exact channel duplication with the
    weights' per-channel normalisation (``pre``, the RGB preprocessing). Returns the adapter's path.
    """
    path, conv = first_conv(model, spec)
    gray = gray_preprocessing(pre)
    adapter = nn.Conv2d(1, 3, kernel_size=1, bias=True, device=conv.weight.device, dtype=conv.weight.dtype)
    mean, std = torch.tensor(pre.mean, dtype=torch.float64), torch.tensor(pre.std, dtype=torch.float64)
    with torch.no_grad():  # (g - m)/s  ->  (g - m_c)/s_c  =  (g - m)/s * s/s_c + (m - m_c)/s_c
        adapter.weight.copy_((gray.std[0] / std).view(3, 1, 1, 1))
        adapter.bias.copy_((gray.mean[0] - mean) / std)
    _set(model, path, nn.Sequential(adapter, conv))
    return f"{path}.{ADAPTER}"


def apply_grayscale(model: nn.Module, spec: BackboneSpec, pre: Preprocessing, mode: str) -> tuple[Preprocessing,
                                                                                                    str | None]:
    """Apply ``mode`` to ``model`` in place; return the preprocessing to use and the adapter's path (learnt)."""
    check_mode(mode)
    if mode == "duplicate":
        return pre, None
    if input_channels(pre) != 3:
        raise ConfigError(f"--grayscale {mode} needs the RGB preprocessing of the weights; got "
                          f"{input_channels(pre)} channel(s)")
    if getattr(model, "transform_input", False):  # torchvision's Inception v3 re-normalises R, G, B in forward
        raise ConfigError(f"--grayscale {mode}: {spec.name} transforms its three input channels itself "
                          "(transform_input); use --grayscale duplicate")
    if mode == "sum-filters":
        sum_filters(model, spec)
        return gray_preprocessing(pre), None
    return gray_preprocessing(pre), add_learnt_adapter(model, spec, pre)


def grayscale_backbone(backbone: "Backbone", mode: str, allowed: tuple[str, ...] = GRAYSCALE_MODES) -> "Backbone":
    """``backbone`` with ``mode`` applied (its network changed in place) and its weights id marked."""
    check_mode(mode, allowed)
    if mode == "duplicate":
        return backbone
    pre, _ = apply_grayscale(backbone.model, backbone.spec, backbone.preprocessing, mode)
    return replace(backbone, preprocessing=pre, weights_id=f"{backbone.weights_id}+gray:{mode}")
