"""One layer reference: a layer name resolves once to a :class:`LayerRef`.

A name may be a friendly cut point (``relu7``), a graph node (``classifier.4``, ``layer3.1.relu_1``), a
module path whose traced nodes it contains (``layer4``), or a composite cell ``<conv>><classifier>``
(``relu5_1>fc6``: the conv map average-pooled to the classifier's input grid, then the pretrained
classifier up to that layer; report 001, Figure 1.7) on networks made of ``features`` + ``classifier``.
Resolution runs on the ``meta`` device (nothing allocated) and is cached per spec.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..errors import ConfigError, did_you_mean
from .spec import BackboneSpec

SEP = ">"


@dataclass(frozen=True)
class LayerRef:
    """A resolved layer.

    Parameters
    ----------
    name : the name as asked.
    node : its graph node (FX qualified name); ``"<conv node>><classifier node>"`` for a composite cell.
    module : the dotted module path whose output is this layer's (hookable), or None (a function node,
        a module called more than once, a composite cell).
    shape : output shape without the batch, at the spec's input size (None when not asked for).
    parts : for a composite cell, its (conv cut, classifier cut) references.
    """

    name: str
    node: str
    module: str | None
    shape: tuple[int, ...] | None = None
    parts: tuple["LayerRef", "LayerRef"] | None = None

    @property
    def composite(self) -> bool:
        return self.parts is not None


@dataclass(frozen=True)
class GridAxes:
    """Axes of the conv-cut x classifier-cut grid of a ``features`` + [``avgpool``] + ``classifier`` network.

    ``conv`` lists the heatmap's rows (cut points with the classifier's input channels, pre-activation
    ``conv*`` outputs left out), ``classifier`` its columns; ``feeds`` every ``features`` node that may start
    a cell; ``grid`` the spatial size maps are pooled to.
    """

    conv: list[str]
    classifier: list[str]
    grid: tuple[int, int]
    channels: int
    feeds: tuple[str, ...] = ()

    def cell(self, conv: str, cls: str) -> str:
        return f"{conv}{SEP}{cls}"


def _index(node: str, part: str) -> int | None:
    prefix = f"{part}."
    if node.startswith(prefix) and node[len(prefix):].isdigit():
        return int(node[len(prefix):])
    return None


def _grid_axes(spec: BackboneSpec) -> GridAxes | None:
    with torch.device("meta"):
        model = spec.build()
    features, classifier = getattr(model, "features", None), getattr(model, "classifier", None)
    if not isinstance(features, nn.Sequential) or not isinstance(classifier, nn.Sequential):
        return None
    if any(isinstance(m, nn.Conv2d) for m in classifier.modules()):  # SqueezeNet: its classifier takes the map
        return None
    size = spec.preprocessing.crop_size
    with torch.no_grad():
        x = torch.empty(1, 3, size, size, device="meta")
        channel_of = {}
        for i, module in enumerate(features):
            x = module(x)
            channel_of[i] = x.shape[1]
        if isinstance(getattr(model, "avgpool", None), nn.AdaptiveAvgPool2d):
            x = model.avgpool(x)
    channels, grid = int(x.shape[1]), (int(x.shape[2]), int(x.shape[3]))
    conv, cls, seen = [], [], set()
    for name, node in spec.cut_points.items():
        if node in seen:
            continue  # aliases (pre_logits, logits)
        seen.add(node)
        i, j = _index(node, "features"), _index(node, "classifier")
        if i is not None and channel_of[i] == channels and not name.startswith("conv"):
            conv.append(name)  # pre-activation conv outputs are left out of the figure: their relu follows
        if j is not None:
            cls.append(name)
    feeds = tuple(f"features.{i}" for i, c in channel_of.items() if c == channels)
    return GridAxes(conv, cls, grid, channels, feeds) if conv and cls else None


def grid_axes(spec: BackboneSpec) -> GridAxes | None:
    """The composite cells' axes for a ``features`` + [``avgpool``] + ``classifier`` network, else None."""
    if id(spec) not in _AXES or _AXES[id(spec)][0] is not spec:
        _AXES[id(spec)] = (spec, _grid_axes(spec))
    return _AXES[id(spec)][1]


_AXES: dict[int, tuple[BackboneSpec, GridAxes | None]] = {}


class _Graph:
    """A spec's traced graph on the meta device: node names in order, module paths, shapes computed so far."""

    def __init__(self, spec: BackboneSpec, num_classes: int | None) -> None:
        from .taps import graph_nodes

        with torch.device("meta"):
            self.model = spec.build(num_classes=num_classes).eval()
        self.nodes = graph_nodes(self.model, spec)
        self.node_set = set(self.nodes)
        self.modules = {name for name, _ in self.model.named_modules() if name}
        self.shapes: dict[str, tuple[int, ...]] = {}

    def canonical(self, query: str) -> str | None:
        """The node ``query`` names: itself, or the last node inside the module path ``query``."""
        if query in self.node_set:
            return query
        inside = [n for n in self.nodes if n.startswith(query + ".")]
        return inside[-1] if inside else None

    def hookable(self, query: str) -> str | None:
        """``query`` as a module path when hooking that module gives exactly this layer's output."""
        if query not in self.modules or f"{query}_1" in self.node_set:  # called twice: a hook fires twice
            return None
        return query


_GRAPHS: dict[tuple[int, int | None], tuple[BackboneSpec, _Graph]] = {}


def _graph(spec: BackboneSpec, model: nn.Module | None) -> _Graph:
    num_classes = None
    if model is not None:
        head = dict(model.named_modules()).get(spec.head)
        num_classes = int(head.out_features) if isinstance(head, nn.Linear) else None
    key = (id(spec), num_classes)
    if key not in _GRAPHS or _GRAPHS[key][0] is not spec:
        _GRAPHS[key] = (spec, _Graph(spec, num_classes))
    return _GRAPHS[key][1]


def _unknown(spec: BackboneSpec, name: str, extra: list[str]) -> ConfigError:
    names = list(spec.cut_points)
    cells = f", a cell <conv>{SEP}<classifier> such as {grid.cell(grid.conv[-1], grid.classifier[0])}" \
        if (grid := grid_axes(spec)) else ""
    return ConfigError(
        f"unknown layer {name!r} for {spec.name}; expected one of {', '.join(names)}, any graph node name or "
        f"module path{cells}.{did_you_mean(name, names + extra)} Run `transferlab layers {spec.name}` for the "
        "list with shapes")


def _plain(spec: BackboneSpec, name: str, graph: _Graph) -> LayerRef:
    query = spec.cut_points.get(name, name)
    node = graph.canonical(query)
    if node is None:
        raise _unknown(spec, name, graph.nodes)
    return LayerRef(name, node, graph.hookable(query))


def _cell(spec: BackboneSpec, name: str, graph: _Graph) -> LayerRef:
    grid = grid_axes(spec)
    if grid is None:
        raise ConfigError(f"layer {name!r}: composite cells <conv>{SEP}<classifier> need a network made of "
                          f"`features` and `classifier` blocks (VGG, AlexNet, digits_cnn); {spec.name} is not one")
    first, _, second = name.partition(SEP)
    conv, cls = _plain(spec, first, graph), _plain(spec, second, graph)
    columns = ", ".join(grid.classifier)
    if conv.node not in grid.feeds:
        raise ConfigError(f"layer {name!r} of {spec.name}: a cell starts at a `features` layer with "
                          f"{grid.channels} channels, the classifier's input ({', '.join(grid.conv)}); got {first!r}")
    if _index(cls.node, "classifier") is None:
        raise ConfigError(f"layer {name!r} of {spec.name}: a cell ends at a classifier layer ({columns}); "
                          f"got {second!r}")
    return LayerRef(name, f"{conv.node}{SEP}{cls.node}", None, parts=(conv, cls))


def resolve_layer(spec: BackboneSpec, name: str, model: nn.Module | None = None, *,
                  shape: bool = True) -> LayerRef:
    """Resolve a layer name of ``spec`` once: friendly name, graph node, module path or composite cell.

    ``model`` (optional) only sets the number of outputs of the head (for the logits' shape). Raises
    :class:`ConfigError` listing the valid names.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a layer name must be a non-empty string; got {name!r}")
    graph = _graph(spec, model)
    ref = _cell(spec, name, graph) if SEP in name else _plain(spec, name, graph)
    if not shape:
        return ref
    if ref.node not in graph.shapes:  # one meta pass: this layer, and every cut point the first time
        from .taps import make_taps

        todo = [ref] + ([_plain(spec, n, graph) for n in spec.cut_points] if not graph.shapes else [])
        size = spec.preprocessing.crop_size
        with torch.no_grad():
            out = make_taps(spec, graph.model, todo)(torch.empty(1, 3, size, size, device="meta"))
        graph.shapes.update({r.node: tuple(out[r.name].shape[1:]) for r in todo})
    return replace(ref, shape=graph.shapes[ref.node])


def resolve_layers(spec: BackboneSpec, names: list[str], model: nn.Module | None = None, *,
                   shape: bool = True) -> list[LayerRef]:
    """:func:`resolve_layer` for several names."""
    return [resolve_layer(spec, name, model, shape=shape) for name in names]
