"""Evaluation shared by every classifier (linear probes and fine-tuned networks): one metrics format.

``metrics.json`` holds accuracy, balanced accuracy, per-class precision/recall/F1/support, the confusion
matrix (rows = true class, columns = predicted) and whatever the caller adds (times, sizes, chosen C).

File and class names are whatever the OS gave (``os.fsdecode``: bytes that are not UTF-8 are lone
surrogates U+DC80-U+DCFF). The CSVs are written with ``errors="surrogateescape"``, so they hold
each name's exact bytes (read them back with ``open(path, newline="", errors="surrogateescape")`` and
``os.fsencode`` gives the file's name again); ``metrics.json`` writes them as JSON ``\\udcXX`` escapes, which
``json.load`` turns back into the same string.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support

from .._utils import atomic_write_bytes, escaped_text, write_json
from ..report.plots import plot_confusion_matrix


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class P/R/F1/support and the confusion matrix."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.arange(len(classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if len(y_true) else float("nan"),
        "n_test": int(len(y_true)),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(classes, precision, recall, f1, support)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "classes": list(classes),
    }


def write_evaluation(out: Path | str, y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str],
                     paths: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
    """Write ``metrics.json``, ``confusion_matrix.csv/png`` and ``predictions.csv``; return the metrics."""
    out = Path(out)
    metrics = {**classification_metrics(y_true, y_pred, classes), **extra}
    write_json(out / "metrics.json", metrics)
    matrix = np.asarray(metrics["confusion_matrix"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["true\\predicted", *classes])
    for name, row in zip(classes, matrix):
        writer.writerow([name, *row.tolist()])
    atomic_write_bytes(out / "confusion_matrix.csv", _csv_bytes(buffer.getvalue()))
    plot_confusion_matrix(matrix, [display_name(c) for c in classes], out / "confusion_matrix.png",
                          title=f"accuracy {metrics['accuracy']:.3f}")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "true", "predicted"])
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        writer.writerow([paths[i] if paths is not None else i, classes[int(t)], classes[int(p)]])
    atomic_write_bytes(out / "predictions.csv", _csv_bytes(buffer.getvalue()))
    return metrics


def _csv_bytes(text: str) -> bytes:
    """UTF-8, with the undecodable bytes of OS names (lone surrogates) written back as those bytes."""
    return text.encode("utf-8", errors="surrogateescape")


def display_name(name: str) -> str:
    """``name`` for a figure or a console: each byte that is not UTF-8 shown as ``\\xNN`` (fonts have no glyph
    for a lone surrogate)."""
    return escaped_text(str(name))
