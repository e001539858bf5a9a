"""The one tap service: ``{layer: tensor}`` for several layers in one forward pass.

:func:`make_taps` traces the network with torchvision's ``create_feature_extractor`` (timm's for timm
backbones; FX), so nothing after the deepest requested layer is computed, and serves every
:class:`~transferlab.backbones.layers.LayerRef`: cut points, graph nodes that are functions
(``layer3.1.relu_1``, ``flatten``), module paths and composite cells (``relu5_1>fc6``). Extraction,
explanations, saved probes, activation maps, perceptual loss and DANN all use it.

Each tapped layer's output passes through an identity module of the graph's own (:func:`hook_point`),
so hooks (Grad-CAM) reach function nodes too. The caller's network is never modified: in-place
activations are replaced by out-of-place copies in the traced module only (so ``fc6`` and ``relu6``
tapped together are both right), and only the traced module's containers change.
"""

from __future__ import annotations

import copy
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from ..errors import ConfigError
from .layers import GridAxes, LayerRef, grid_axes, resolve_layer
from .spec import BackboneSpec


def graph_nodes(model: nn.Module, spec: BackboneSpec | None = None) -> list[str]:
    """All eval-mode graph node names of a model (any of them is a valid cut point), under the spec's
    tracer (timm's keeps timm's layers whole)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec is not None and spec.node_names is not None:
            return spec.node_names(model)
        return get_graph_node_names(model)[1]


def make_taps(spec: BackboneSpec, model: nn.Module, layers: Sequence[str | LayerRef], *,
              markers: dict[str, nn.Module] | None = None) -> fx.GraphModule:
    """A module whose forward returns ``{layer: tensor}`` for every requested layer, in one pass.

    ``markers`` (node -> identity module) lets a caller that rebuilds its taps keep the same hook points.
    The result shares ``model``'s parameters (training through it trains ``model``).
    """
    if not layers:
        raise ConfigError("no layer requested; pass at least one --layer")
    refs: dict[str, LayerRef] = {}
    for layer in layers:
        ref = layer if isinstance(layer, LayerRef) else resolve_layer(spec, layer, model, shape=False)
        refs.setdefault(ref.name, ref)
    base = list(dict.fromkeys(r.parts[0].node if r.composite else r.node for r in refs.values()))
    keys = {node: f"n{i}" for i, node in enumerate(base)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = spec.make_taps(model, keys) if spec.make_taps is not None else \
            create_feature_extractor(model, return_nodes=keys)
    if not isinstance(gm, fx.GraphModule):
        raise ConfigError(f"{spec.name}: its make_taps returned {type(gm).__name__}, not an FX GraphModule")
    grid = grid_axes(spec) if any(r.composite for r in refs.values()) else None
    nodes = list(dict.fromkeys([*base, *(r.node for r in refs.values())]))
    markers = {} if markers is None else markers
    targets = {node: f"layer_tap_{i}" for i, node in enumerate(nodes)}
    for node, target in targets.items():
        gm.add_submodule(target, markers.setdefault(node, nn.Identity()))
    for graph in _graphs(gm):
        _rewrite(gm, model, graph, refs, keys, targets, grid)
        _own_activations(gm, graph)
    gm.recompile()
    gm.layer_refs, gm.layer_markers = refs, targets
    return gm


def _graphs(gm: fx.GraphModule) -> list[fx.Graph]:
    """Both graphs of torchvision's train/eval ``DualGraphModule``, or the one graph."""
    dual = [getattr(gm, "train_graph", None), getattr(gm, "eval_graph", None)]
    return [g for g in dual if g is not None] or [gm.graph]


def _rewrite(gm: fx.GraphModule, model: nn.Module, graph: fx.Graph, refs: dict[str, LayerRef],
             keys: dict[str, str], targets: dict[str, str], grid: GridAxes | None) -> None:
    """Insert the identity markers and the composite cells' chains; the output maps names to them."""
    output = next(n for n in graph.nodes if n.op == "output")
    found = output.args[0]
    marked: dict[str, fx.Node] = {}
    for node, key in keys.items():
        value = found[key]
        with graph.inserting_after(value):
            marker = graph.create_node("call_module", targets[node], (value,))
        value.replace_all_uses_with(marker, delete_user_cb=lambda user, marker=marker: user is not marker)
        marked[node] = marker
    chains: dict[str, dict[int, str]] = {}
    for ref in refs.values():
        if ref.composite:
            conv, cls = ref.parts
            chains.setdefault(conv.node, {})[int(cls.node.rpartition(".")[2])] = ref.node
    for conv, wanted in chains.items():
        with graph.inserting_before(output):
            z = graph.call_function(F.adaptive_avg_pool2d, (marked[conv], grid.grid))
            z = graph.call_function(torch.flatten, (z, 1))
            for j in range(max(wanted) + 1):
                target = f"classifier.{j}"
                try:
                    gm.get_submodule(target)
                except AttributeError:
                    gm.add_submodule(target, model.get_submodule(target))
                z = graph.create_node("call_module", target, (z,))
                if j in wanted:
                    z = marked[wanted[j]] = graph.create_node("call_module", targets[wanted[j]], (z,))
    output.args = ({name: marked[ref.node] for name, ref in refs.items()},)


def _own_activations(gm: fx.GraphModule, graph: fx.Graph) -> None:
    """Out-of-place copies of the in-place activations, in the traced module only (the caller's network
    keeps its own), so a tapped output is never overwritten later in the pass. Same values."""
    for node in graph.nodes:
        if node.kwargs.get("inplace") is True:  # F.relu(x, inplace=True)
            node.kwargs = {**node.kwargs, "inplace": False}
        if node.op != "call_module":
            continue
        module = gm.get_submodule(node.target)
        if getattr(module, "inplace", False) is not True or any(True for _ in module.parameters()):
            continue
        own = copy.deepcopy(module)
        own.inplace = False
        parent, _, attr = node.target.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, attr, own)


def hook_point(taps: fx.GraphModule, layer: str) -> nn.Module:
    """The identity module that ``layer``'s output passes through in ``taps`` (hook it: Grad-CAM)."""
    return taps.get_submodule(taps.layer_markers[taps.layer_refs[layer].node])


def depends_on(taps: fx.GraphModule, layer: str, source: str) -> bool:
    """Whether ``layer``'s value in ``taps`` is computed from ``source`` (or is it)."""
    by_target = {n.target: n for n in taps.graph.nodes if n.op == "call_module"}
    start = by_target[taps.layer_markers[taps.layer_refs[layer].node]]
    goal = by_target[taps.layer_markers[taps.layer_refs[source].node]]
    todo, seen = [start], set()
    while todo:
        node = todo.pop()
        if node is goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(node.all_input_nodes)
    return False


def layer_shapes(spec: BackboneSpec, layers: list[str] | None = None, model: nn.Module | None = None,
                 num_classes: int | None = None) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch) of each layer (default: every cut point) at the spec's input size.

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
    with torch.no_grad():
        out = make_taps(spec, model, layers).eval()(x)
    return {layer: tuple(out[layer].shape[1:]) for layer in layers}
