"""Figures (matplotlib, Agg backend), tables (CSV + Markdown) and the Markdown run report."""

from .plots import plot_confusion_matrix, plot_curves, save_figure
from .tables import write_table

__all__ = ["plot_confusion_matrix", "plot_curves", "save_figure", "write_table"]
