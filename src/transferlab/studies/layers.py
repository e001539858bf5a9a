"""``transferlab study layers``: which layer to cut at (report 002 Q11's depth curve, report 001 Fig. 1.7).

Depth curve: for each cut point, the features of that layer alone (one extraction per layer, so its
extraction time is that layer's), the SVM's test accuracy and its k-fold CV accuracy on the training
split, the feature size and the extraction time. Spatial layers are pooled (``avg`` by default) so
early layers stay small — flattened, VGG16's conv1_1 is 64x224x224 = 3.2M values per image, the 38 GB
wall of report 002. For a ``features`` + ``classifier`` network (VGG, AlexNet, digits_cnn) the study
also fills the conv-cut x classifier-cut heatmap of report 001 (see :mod:`.grid` for our reading); its
cells (``relu5_1>fc6``) are ordinary registry layers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ..backbones import Backbone, resolve_layer
from ..classify import LinearOptions
from ..errors import ConfigError
from ..pipeline import ExtractionOptions
from ..report.plots import save_figure
from .grid import GridAxes, grid_axes
from .base import ProbeStudy, best_by_cv
from .probe import drop_private, extraction_metrics, probe_metrics
from .runner import Condition

CONV_COLUMN = "conv"


def default_layers(backbone: Backbone) -> list[str]:
    """Every distinct cut point in network order, without aliases, the logits, and pre-activation
    outputs that a ``relu`` cut point follows (VGG16: relu1_1 ... pool5, relu6, relu7)."""
    spec = backbone.spec
    names = list(spec.cut_points)
    head = spec.cut_points.get(spec.head, spec.head)
    layers, seen = [], set()
    for i, name in enumerate(names):
        node = spec.cut_points[name]
        following = names[i + 1] if i + 1 < len(names) else ""
        if node in seen or node == head:
            continue
        seen.add(node)
        if re.match(r"(conv|fc)", name) and following.startswith("relu"):
            continue
        layers.append(name)
    return layers


class LayersStudy(ProbeStudy):
    name = "layers"

    def __init__(self, data: Path | str, extraction: ExtractionOptions, linear: LinearOptions | None = None,
                 layers: list[str] | None = None, heatmap: bool | None = None, cv: bool = True) -> None:
        super().__init__(data, extraction, linear, cv)
        self.backbone = self.source.backbone()
        self.layers = list(layers) if layers else default_layers(self.backbone)
        refs = {layer: resolve_layer(self.backbone.spec, layer, self.backbone.model) for layer in self.layers}
        self.axes: GridAxes | None = grid_axes(self.backbone.spec) if heatmap is not False else None
        if heatmap and self.axes is None:
            raise ConfigError(f"--heatmap needs a network made of `features` and `classifier` blocks (VGG, "
                              f"AlexNet, digits_cnn); {self.backbone.name} is not one; use --no-heatmap")
        self._shapes = {layer: ref.shape for layer, ref in refs.items()}

    def study_config(self) -> dict[str, Any]:
        return {"layers": self.layers, "heatmap": {"conv": self.axes.conv, "classifier": self.axes.classifier,
                            "grid": list(self.axes.grid)} if self.axes else None}

    def conditions(self) -> list[Condition]:
        depth = [Condition(f"depth:{layer}", {"part": "depth", "depth": i, "layer": layer,
                                              "pooling": self._pooling(layer)})
                 for i, layer in enumerate(self.layers)]
        cells = []
        if self.axes:
            cells = [Condition(f"heatmap:{self.axes.cell(c, k)}",
                               {"part": "heatmap", "layer": self.axes.cell(c, k), "conv_cut": c, "classifier_cut": k,
                                "pooling": "none"})
                     for c in self.axes.conv for k in self.axes.classifier]
        return depth + cells

    def _pooling(self, layer: str) -> str:
        return self.extraction.pooling if len(self._shapes[layer]) > 1 else "none"

    def evaluate(self, condition: Condition) -> dict[str, Any]:
        p = condition.params
        if p["part"] == "depth":
            options = self.source.options([p["layer"]], p["pooling"])
        else:  # the cells are ordinary layers; one pass per conv cut serves its whole row
            options = self.source.options([self.axes.cell(p["conv_cut"], k) for k in self.axes.classifier], "none")
        backbone = self.backbone
        result = self.source.get(options, backbone)
        feats = result.features[p["layer"]]
        metrics = probe_metrics(feats, backbone, p["layer"], options, self.linear, cv=self.cv)
        shape = self._shapes.get(p["layer"])
        return {"layer_shape": "x".join(map(str, shape)) if shape else "", **drop_private(metrics),
                **extraction_metrics(result)}

    def figures(self, rows: list[dict[str, Any]], out: Path) -> list[Path]:
        depth = [r for r in rows if r["part"] == "depth"]
        paths = [plot_depth_curve(depth, out / "depth_curve.png", f"{self.backbone.name}: accuracy vs depth")]
        if self.axes:
            paths.append(plot_heatmap(rows, self.axes, out / "heatmap.png",
                                      f"{self.backbone.name}: SVM test accuracy, conv cut x classifier cut"))
        return paths

    def summary(self, rows: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        depth = [r for r in rows if r["part"] == "depth"]
        best = best_by_cv(depth)
        summary = {"backbone": self.backbone.name, "best_layer_by_cv": best["layer"] if best else None,
                   "best_layer_test_acc": best["test_acc"] if best else None,
                   "max_rss_mb": max(r["max_rss_mb"] for r in rows),
                   "peak_traced_mb": max(r["peak_traced_mb"] for r in rows)}
        top = best_by_cv([r for r in rows if r["part"] == "heatmap"])
        if top:
            summary["best_cell_by_cv"] = {"conv_cut": top["conv_cut"], "classifier_cut": top["classifier_cut"],
                                          "test_acc": top["test_acc"]}
        return summary


def heatmap_matrix(rows: list[dict[str, Any]], axes: GridAxes) -> tuple[np.ndarray, list[str]]:
    """Test accuracy per (conv cut, column); the first column is the conv cut alone (its depth row)."""
    columns = [CONV_COLUMN] + axes.classifier
    matrix = np.full((len(axes.conv), len(columns)), np.nan)
    depth = {r["layer"]: r for r in rows if r["part"] == "depth"}
    for i, conv in enumerate(axes.conv):
        if conv in depth:
            matrix[i, 0] = depth[conv]["test_acc"]
    for r in rows:
        if r["part"] == "heatmap":
            matrix[axes.conv.index(r["conv_cut"]), columns.index(r["classifier_cut"])] = r["test_acc"]
    return matrix, columns


def plot_heatmap(rows: list[dict[str, Any]], axes: GridAxes, path: Path, title: str) -> Path:
    import matplotlib.pyplot as plt

    matrix, columns = heatmap_matrix(rows, axes)
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2, 0.5 * len(axes.conv) + 1.8))
    image = ax.imshow(matrix, cmap="viridis", aspect="auto")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if np.isfinite(matrix[i, j]):
                ax.text(j, i, f"{matrix[i, j]:.3f}", ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] < np.nanmean(matrix) else "black")
    ax.set_xticks(range(len(columns)), columns, rotation=30)
    ax.set_yticks(range(len(axes.conv)), axes.conv)
    ax.set_xlabel("classifier cut (conv = no classifier layer)")
    ax.set_ylabel("convolutional cut")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="test accuracy")
    return save_figure(fig, path)


def plot_depth_curve(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Test and CV accuracy per cut point (top); feature size and extraction time below it (report 002).

    Two panels sharing the cut points, so each quantity has its own axis: feature size on the lower panel's
    left (log scale), extraction time on its right.
    """
    import matplotlib.pyplot as plt

    x = np.arange(len(rows))
    fig, (ax, size) = plt.subplots(2, 1, sharex=True, figsize=(max(6.0, 0.45 * len(rows) + 3), 6.0),
                                   gridspec_kw={"height_ratios": [3, 2]}, layout="constrained")
    ax.plot(x, [r["test_acc"] for r in rows], marker="o", label="test accuracy")
    if any(r["cv_acc"] is not None for r in rows):
        cv = np.array([np.nan if r["cv_acc"] is None else r["cv_acc"] for r in rows])
        std = np.array([np.nan if r["cv_std"] is None else r["cv_std"] for r in rows])
        ax.errorbar(x, cv, yerr=std, marker="s", ms=3, capsize=2, label="CV accuracy (train)")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title, fontsize=9)
    size.plot(x, [r["feature_size"] for r in rows], color="gray", ls="--", marker=".", label="feature size")
    size.set_yscale("log")
    size.set_ylabel("feature size (values)", color="dimgray")
    size.grid(alpha=0.3)
    time_ax = size.twinx()
    time_ax.plot(x, [r["extract_s"] for r in rows], color="tab:red", ls=":", marker="x", label="extraction time")
    time_ax.set_ylabel("extraction time (s)", color="tab:red")
    time_ax.tick_params(axis="y", colors="tab:red")
    size.set_xticks(x, [r["layer"] for r in rows], rotation=60, fontsize=7)
    size.set_xlabel("cut point (input to output)")
    handles = [h for a in (size, time_ax) for h in a.get_legend_handles_labels()[0]]
    size.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="upper left")
    return save_figure(fig, path)
