"""Figures (matplotlib, Agg backend), tables (CSV + Markdown), the Markdown run report and the HTML reports
(``report.html`` of every run and study folder, ``index.html`` of a folder of runs: :mod:`.run_page`, :mod:`.index`)."""

from .plots import plot_confusion_matrix, plot_curves, save_figure
from .tables import write_table

__all__ = ["plot_confusion_matrix", "plot_curves", "save_figure", "write_table"]
