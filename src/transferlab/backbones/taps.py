"""Layers addressed by name: resolve cut points, tap several layers in one pass, report shapes.

Uses torchvision's ``create_feature_extractor`` (FX): the returned module computes nothing after the
deepest requested layer.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from ..errors import ConfigError, did_you_mean
from .spec import BackboneSpec


def graph_nodes(model: nn.Module, spec: BackboneSpec | None = None) -> list[str]:
    """All eval-mode graph node names of a model (any of them is a valid cut point), under the spec's
    tracer (timm's keeps timm's layers whole)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec is not None and spec.node_names is not None:
            return spec.node_names(model)
        return get_graph_node_names(model)[1]


def resolve_layer(spec: BackboneSpec, layer: str, model: nn.Module | None = None) -> str:
    """Map a friendly name (``relu7``) or a graph node name (``classifier.4``) to its node name."""
    if layer in spec.cut_points:
        return spec.cut_points[layer]
    if model is not None and layer in graph_nodes(model, spec):
        return layer
    names = list(spec.cut_points)
    raise ConfigError(
        f"unknown layer {layer!r} for {spec.name}; expected one of {', '.join(names)}"
        f" or any graph node name.{did_you_mean(layer, names)} "
        f"Run `transferlab layers {spec.name}` for the list with shapes"
    )


def make_taps(spec: BackboneSpec, model: nn.Module, layers: list[str]) -> nn.Module:
    """A module whose forward returns ``{layer: tensor}`` for every requested layer, in one pass."""
    if not layers:
        raise ConfigError("no layer requested; pass at least one --layer")
    nodes = {resolve_layer(spec, layer, model): layer for layer in layers}
    if len(nodes) < len(set(layers)):  # aliases of one node (relu7 and pre_logits): tap once, copy out
        return _AliasTaps(make_taps(spec, model, list({resolve_layer(spec, l, model): l for l in layers}.values())),
                          {layer: nodes[resolve_layer(spec, layer, model)] for layer in layers})
    if len(nodes) > 1:
        disable_inplace(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.make_taps is not None:
            return spec.make_taps(model, nodes)
        return create_feature_extractor(model, return_nodes=nodes)


def disable_inplace(model: nn.Module) -> None:
    """Turn off in-place activations (``ReLU(inplace=True)``...) so that a tapped output is never
    overwritten by a later layer of the same pass (``fc6`` and ``relu6`` tapped together). The results
    are identical; only memory use changes."""
    for module in model.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False


class _AliasTaps(nn.Module):
    def __init__(self, inner: nn.Module, alias: dict[str, str]) -> None:
        super().__init__()
        self.inner, self.alias = inner, alias

    def forward(self, x):
        out = self.inner(x)
        return {layer: out[source] for layer, source in self.alias.items()}


def layer_shapes(spec: BackboneSpec, layers: list[str] | None = None, model: nn.Module | None = None,
                 num_classes: int | None = None) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch) of each cut point at the spec's input size.

    Runs on the ``meta`` device when no model is given (built with ``num_classes`` outputs, default the
    spec's), so no weights are allocated and nothing is computed.
    """
    layers = list(spec.cut_points) if layers is None else layers
    size = spec.preprocessing.crop_size
    if model is None:
        with torch.device("meta"):
            model = spec.build(num_classes=num_classes)
        x = torch.empty(1, 3, size, size, device="meta")
    else:
        x = torch.zeros(1, 3, size, size, device=next(model.parameters()).device)
    model.eval()
    with torch.no_grad():
        out = make_taps(spec, model, layers)(x)
    return {layer: tuple(out[layer].shape[1:]) for layer in layers}
