"""Plots shared by every command. Always the non-interactive Agg backend: no display is needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig: "plt.Figure", path: Path | str, dpi: int = 120) -> Path:
    """Save and close a figure (creating the parent folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_curves(rows: Sequence[dict[str, Any]], groups: dict[str, list[str]], path: Path | str,
                x: str = "epoch", title: str = "") -> Path:
    """Line plots of per-epoch values, one panel per group of keys."""
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.6), squeeze=False)
    xs = [r.get(x) for r in rows]
    for ax, (name, keys) in zip(axes[0], groups.items()):
        for key in keys:
            ys = [r.get(key) for r in rows]
            if any(v is not None for v in ys):
                ax.plot(xs, [np.nan if v is None else v for v in ys], marker="o", ms=3, label=key)
        ax.set_xlabel(x)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_confusion_matrix(matrix: np.ndarray, classes: Sequence[str], path: Path | str,
                          title: str = "Confusion matrix") -> Path:
    """Confusion matrix heat map with class names on both axes and counts in the cells."""
    matrix = np.asarray(matrix)
    n = len(classes)
    size = max(4.0, 0.5 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > threshold else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return save_figure(fig, path)
