"""Report 001, Figure 1.7: a network cut in its convolutional part *and* in its classifier part.

How we read the figure (section 1.6.1 of report 001): the authors "decapitated" torchvision's VGG16
twice — ``features`` kept up to a convolutional cut (y axis), then VGG's own ``avgpool`` and the
pretrained ``classifier`` kept up to a classifier cut (x axis) — and trained the SVM on that output.
Their best cell, ``ReLU 5_1`` x ``Linear 1``, only makes sense that way: relu5_1's 512x14x14 map is
averaged to the 512x7x7 grid ``classifier[0]`` expects and goes through the pretrained fc6. So:

* rows are the convolutional cut points whose channel count equals the classifier's input channels
  (for VGG16 blocks 4 and 5: relu4_1 ... pool5; earlier blocks have 64-256 channels and cannot feed
  fc6 without new weights, so they are not in the figure);
* the map is adaptive-average-pooled to the classifier's input grid (VGG's ``avgpool``: 7x7; a model
  without ``avgpool`` — ``digits_cnn`` — uses the grid its last feature map has), then flattened;
* columns are the classifier's cut points (fc6, relu6, fc7, relu7, fc8 for VGG); the study adds one
  column "conv" = the convolutional cut itself with the study's ``--pooling`` (no classifier layer).
The cell (last conv cut, relu7) is exactly the network's own relu7 (tested on ``digits_cnn``).

This is a tap module for :func:`transferlab.backbones.make_taps` (``BackboneSpec.make_taps``), so
the ordinary extractor, cache and pooling apply to the composite layers, named ``"<conv>><cls>"``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import Backbone
from ..backbones.spec import BackboneSpec

SEP = ">"


@dataclass(frozen=True)
class GridAxes:
    conv: list[str]            # row names (cut points in model.features)
    classifier: list[str]      # column names (cut points in model.classifier)
    grid: tuple[int, int]      # spatial size the classifier's input is pooled to
    channels: int

    def cell(self, conv: str, cls: str) -> str:
        return f"{conv}{SEP}{cls}"


def _index(node: str, part: str) -> int | None:
    prefix = f"{part}."
    if node.startswith(prefix) and node[len(prefix):].isdigit():
        return int(node[len(prefix):])
    return None


def grid_axes(spec: BackboneSpec) -> GridAxes | None:
    """The heatmap's axes for a ``features`` + [``avgpool``] + ``classifier`` network, else None."""
    with torch.device("meta"):
        model = spec.build()
    features, classifier = getattr(model, "features", None), getattr(model, "classifier", None)
    if not isinstance(features, nn.Sequential) or not isinstance(classifier, nn.Sequential):
        return None
    size = spec.preprocessing.crop_size
    with torch.no_grad():
        x = torch.empty(1, 3, size, size, device="meta")
        channel_of = {}
        for i, module in enumerate(features):
            x = module(x)
            channel_of[i] = x.shape[1]
        h = x
        if isinstance(getattr(model, "avgpool", None), nn.AdaptiveAvgPool2d):
            h = model.avgpool(h)
    channels, grid = int(h.shape[1]), (int(h.shape[2]), int(h.shape[3]))
    conv, cls, seen = [], [], set()
    for name, node in spec.cut_points.items():
        if node in seen:
            continue  # aliases (pre_logits, logits)
        seen.add(node)
        i, j = _index(node, "features"), _index(node, "classifier")
        if i is not None and channel_of[i] == channels and not name.startswith("conv"):
            conv.append(name)  # pre-activation conv outputs are left out: their relu follows
        if j is not None:
            cls.append(name)
    return GridAxes(conv, cls, grid, channels) if conv and cls else None


class GridTaps(nn.Module):
    """Runs ``features`` once; at each requested conv cut, pools to the grid and runs the classifier prefix."""

    def __init__(self, model: nn.Module, wanted: dict[int, dict[int, str]], grid: tuple[int, int]) -> None:
        super().__init__()
        self.features, self.classifier, self.wanted, self.grid = model.features, model.classifier, wanted, grid

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        last = max(self.wanted)
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self.wanted:
                z = torch.flatten(F.adaptive_avg_pool2d(x, self.grid), 1)
                stop = max(self.wanted[i])
                for j, layer in enumerate(self.classifier):
                    z = layer(z)
                    if j in self.wanted[i]:
                        out[self.wanted[i][j]] = z.clone()  # the classifier's ReLUs work in place
                    if j == stop:
                        break
            if i == last:
                break
        return out


def grid_backbone(backbone: Backbone, axes: GridAxes) -> Backbone:
    """The same network and weights, whose cut points are the grid's cells ``"<conv>><cls>"``."""
    spec = backbone.spec
    cells = {axes.cell(c, k): f"{spec.cut_points[c]}{SEP}{spec.cut_points[k]}"
             for c in axes.conv for k in axes.classifier}

    def make_grid_taps(model: nn.Module, nodes: dict[str, str]) -> nn.Module:
        wanted: dict[int, dict[int, str]] = {}
        for node, layer in nodes.items():
            conv_node, _, cls_node = node.partition(SEP)
            wanted.setdefault(_index(conv_node, "features"), {})[_index(cls_node, "classifier")] = layer
        return GridTaps(model, wanted, axes.grid)

    return replace(backbone, spec=replace(spec, cut_points=cells, make_taps=make_grid_taps))
