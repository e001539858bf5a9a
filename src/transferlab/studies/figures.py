"""The studies' figures (matplotlib, Agg): bars per condition and curves with a time axis."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..report.plots import save_figure


def _values(rows: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in rows])


def plot_bars(rows: Sequence[dict[str, Any]], label: str, path: Path, title: str,
              second: str | None = None, second_label: str = "", test_label: str = "test accuracy") -> Path:
    """Test accuracy and CV accuracy (± std) per condition; ``second`` (a speed or time) as dots on a twin axis."""
    import matplotlib.pyplot as plt

    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 * len(rows) + 2), 4))
    ax.bar(x - 0.2, _values(rows, "test_acc"), 0.4, label=test_label)
    ax.bar(x + 0.2, _values(rows, "cv_acc"), 0.4, yerr=_values(rows, "cv_std"), capsize=3,
           label="CV accuracy (train)", alpha=0.8)
    ax.set_xticks(x, [str(r[label]) for r in rows], rotation=20)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=9)
    handles = ax.get_legend_handles_labels()[0]
    if second:
        twin = ax.twinx()
        twin.plot(x, _values(rows, second), "kD", ms=5, label=second_label or second)
        twin.set_ylabel(second_label or second)
        twin.set_ylim(bottom=0)
        handles += twin.get_legend_handles_labels()[0]
    fig.legend(handles, [h.get_label() for h in handles], loc="upper center", ncol=3, fontsize=7,
               bbox_to_anchor=(0.5, -0.05))  # below the rotated tick labels
    return save_figure(fig, path)


def plot_sweep(rows: Sequence[dict[str, Any]], x_key: str, path: Path, title: str, x_label: str,
               times: Sequence[str] = ("fit_s", "predict_s"), log_x: bool = True) -> Path:
    """Accuracy (test and CV) against a swept value, with times on a twin axis."""
    import matplotlib.pyplot as plt

    x = _values(rows, x_key)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, _values(rows, "test_acc"), marker="o", label="test accuracy")
    if np.isfinite(_values(rows, "cv_acc")).any():
        ax.errorbar(x, _values(rows, "cv_acc"), yerr=_values(rows, "cv_std"), marker="s", ms=3, capsize=2,
                    label="CV accuracy (train)")
    if log_x:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(x_label)
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    twin = ax.twinx()
    for key, style in zip(times, ("--", ":")):
        twin.plot(x, _values(rows, key), ls=style, marker=".", color="gray", label=key.replace("_s", " time"))
    twin.set_ylabel("seconds")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    fig.legend(handles, [h.get_label() for h in handles], loc="upper center", ncol=4, fontsize=7,
               bbox_to_anchor=(0.5, 0.0))
    return save_figure(fig, path)
