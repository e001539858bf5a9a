"""``report.html`` of a run or study folder, built only from the files the run left there.

What it reads: ``status.json``, ``config.json`` (the call, replayed by ``transferlab rerun``), ``metrics.json``
(headline numbers, per-class table, confusion matrix), ``predictions.csv`` (the misclassified images, see
:mod:`.misclassified`), ``history.csv`` (training curves), ``summary.json`` and the study's table, and every
PNG of the folder. Images are embedded (data URIs): the page is one file that opens anywhere.
"""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path
from typing import Any

from .._utils import atomic_write_bytes
from . import html as h
from .misclassified import LIMIT, has_predictions, misclassified

REPORT = "report.html"
_HEADLINE = ("accuracy", "balanced_accuracy", "backbone", "layer", "classifier", "chosen_C", "n_train", "n_test",
             "feature_size", "best_epoch")
_SHOWN_ELSEWHERE = {"confusion_matrix.png", "curves.png"}
_MATRIX_TABLE_MAX = 40  # classes; a larger matrix is only linked (1,000 classes would be a million cells)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when it is missing or damaged (a report shows what there is)."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8", errors="surrogateescape"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read_csv_rows(path: Path) -> list[dict[str, Any]]:
    """CSV rows with numbers as numbers (file names keep their exact bytes)."""
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _number(value: str | None) -> Any:
    if value is None or value == "":
        return value
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def describe(folder: Path) -> dict[str, Any]:
    """What the index lists of a folder: command, backbone, layer, headline metric, date, status."""
    folder = Path(folder)
    config, metrics = read_json(folder / "config.json"), read_json(folder / "metrics.json")
    summary, status = read_json(folder / "summary.json"), read_json(folder / "status.json")
    args = (config.get("call") or {}).get("args") or {}
    extraction = config.get("extraction") or args.get("extraction") or {}
    options = args.get("options") if isinstance(args.get("options"), dict) else {}

    def first(*values):
        return next((v for v in values if v not in (None, "", [])), None)

    layers = config.get("layers") or extraction.get("layers") or []
    metric_name, metric = "accuracy", metrics.get("accuracy")
    if metric is None:
        for key, value in summary.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and "acc" in key:
                metric_name, metric = key, value
                break
    return {"command": first(config.get("command"), "?"),
            "backbone": first(metrics.get("backbone"), config.get("backbone"), extraction.get("backbone"),
                              summary.get("backbone"), options.get("backbone"), args.get("backbone")),
            "layer": first(metrics.get("layer"), summary.get("best_layer_by_cv"), config.get("resolved_layer"),
                           layers[0] if isinstance(layers, list) and len(layers) == 1 else None),
            "metric_name": metric_name, "metric": metric, "date": status.get("started"),
            "status": status.get("status"), "seconds": status.get("seconds")}


def write_html_report(folder: Path | str, limit: int = LIMIT) -> Path:
    """Write ``folder/report.html`` from the files of a run or study folder; return its path."""
    folder = Path(folder)
    config, metrics = read_json(folder / "config.json"), read_json(folder / "metrics.json")
    summary, status = read_json(folder / "summary.json"), read_json(folder / "status.json")
    info = describe(folder)
    parts = [_overview(folder, info, status, metrics, summary)]
    if metrics.get("per_class"):
        rows = [{"class": c, **v} for c, v in metrics["per_class"].items()]
        parts.append(h.section("Per class", h.table(rows)))
    if metrics.get("confusion_matrix") and metrics.get("classes"):
        parts.append(h.section("Confusion matrix", _confusion(metrics) + _png(folder, "confusion_matrix.png")))
    if has_predictions(folder):
        parts.append(h.section("Misclassified test images", _misclassified(folder, config, limit)))
    if (folder / "history.csv").is_file() or (folder / "curves.png").is_file():
        parts.append(h.section("Training curves", _curves(folder)))
    figures = [p for p in sorted(folder.glob("*.png")) if p.name not in _SHOWN_ELSEWHERE]
    if figures:
        parts.append(h.section("Figures", "".join(h.figure(p) for p in figures)))
    parts.append(_study(folder, summary))
    parts.append(h.section("Re-run", _rerun(folder)))
    if config:
        parts.append(h.section("Configuration", "<details><summary>config.json: the resolved options, the call and "
                               f"the library versions</summary><pre>{h.text(json.dumps(config, indent=2))}</pre>"
                               "</details>"))
    parts.append(h.section("Files", _files(folder)))
    title = f"transferlab {info['command']}: {folder.resolve().name}"
    path = folder / REPORT
    atomic_write_bytes(path, h.page(title, "\n".join(p for p in parts if p)).encode("utf-8"))
    return path


def _overview(folder: Path, info: dict, status: dict, metrics: dict, summary: dict) -> str:
    tiles = {"status": status.get("status"), "started": status.get("started"),
             "seconds": status.get("seconds")}
    numbers = {k: metrics.get(k) for k in _HEADLINE if metrics.get(k) is not None}
    if not numbers and summary:
        numbers = {k: v for k, v in summary.items() if isinstance(v, (str, int, float)) and k not in ("table",)}
    error = f'<p class="bad">{h.text(status["error"])}</p>' if status.get("error") else ""
    return h.headline(numbers) + h.headline(tiles) + error


def _confusion(metrics: dict) -> str:
    """The matrix as a table (rows: true class, columns: predicted), the diagonal green, errors red."""
    classes, matrix = metrics["classes"], metrics["confusion_matrix"]
    if len(classes) > _MATRIX_TABLE_MAX:
        return (f'<p class="muted">{len(classes)} classes: the matrix is in confusion_matrix.png and '
                '<a href="confusion_matrix.csv">confusion_matrix.csv</a>.</p>')
    head = "".join(f"<th>{h.text(c)}</th>" for c in classes)
    rows = []
    for i, (name, row) in enumerate(zip(classes, matrix)):
        cells = "".join(f'<td class="num {"diag" if i == j else ("off" if v else "")}">{h.text(v)}</td>'
                        for j, v in enumerate(row))
        rows.append(f"<tr><th>{h.text(name)}</th>{cells}</tr>")
    return (f'<div class="scroll"><table><thead><tr><th>true \\ predicted</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _png(folder: Path, name: str) -> str:
    return h.figure(folder / name) if (folder / name).is_file() else ""


def _misclassified(folder: Path, config: dict, limit: int) -> str:
    cwd = (config.get("call") or {}).get("cwd")
    items, total = misclassified(folder, limit, cwd=cwd, device=config.get("resolved_device"))
    if not total:
        return '<p class="good">No test image was misclassified.</p>'
    cards = []
    for item in items:
        pictures = "".join(h.img(png, alt, cls="thumb-img") for png, alt in
                           ((item.image_png, f"{item.path}"), (item.overlay_png, f"Grad-CAM of {item.path}"))
                           if png is not None) or '<span class="muted">(image not readable)</span>'
        score = (f"score {item.score:.3g}, softmax {item.probability:.2f}" if item.score is not None else "")
        cards.append(f'<div class="thumb">{pictures}<div>true <b>{h.text(item.true)}</b>, predicted '
                     f'<b class="bad">{h.text(item.predicted)}</b></div><div>{h.text(score)}</div>'
                     f'<div class="name">{h.text(item.path)}</div><div class="muted">{h.text(item.note)}</div></div>')
    shown = f"{len(items)} of {total}" if total > len(items) else f"all {total}"
    return (f"<p>{shown} misclassified test images (left: what the network saw; right: Grad-CAM of the predicted "
            f"class, where the model allows it). Every prediction is in "
            f'<a href="predictions.csv">predictions.csv</a>.</p><div class="thumbs">{"".join(cards)}</div>')


def _curves(folder: Path) -> str:
    """The run's own ``curves.png``, or curves drawn here from ``history.csv`` (losses, accuracies), and the
    history as a table."""
    body = _png(folder, "curves.png")
    if (folder / "history.csv").is_file():
        rows = read_csv_rows(folder / "history.csv")
        if not body:
            body = _history_figure(rows)
        body += f"<details><summary>history.csv ({len(rows)} epochs)</summary>{h.table(rows)}</details>"
    return body


def _history_figure(rows: list[dict[str, Any]]) -> str:
    import tempfile

    from .plots import plot_curves

    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"
            and all(isinstance(r.get(k), (int, float, type(None))) for r in rows)]
    groups = {"loss": [k for k in keys if "loss" in k], "accuracy": [k for k in keys if "acc" in k]}
    groups = {name: found for name, found in groups.items() if found}
    if not groups or "epoch" not in rows[0]:
        return ""
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_curves(rows, groups, Path(tmp) / "curves.png")
        return h.figure(path, "curves (from history.csv)")


def _study(folder: Path, summary: dict) -> str:
    """A study's table (``summary.json`` names it) and summary numbers."""
    table = summary.get("table")
    if not summary or not isinstance(table, str) or not (folder / table).is_file():
        return ""
    rows = read_csv_rows(folder / table)
    # scalars are in the headline; what is left (the best cell of a grid...) is listed here
    values = {k: v for k, v in summary.items() if k not in ("table", "figures") and isinstance(v, (dict, list))}
    listed = "".join(f"<tr><th>{h.text(k)}</th>{h.cell(v)}</tr>" for k, v in values.items())
    return ((h.section("Study summary", f"<table><tbody>{listed}</tbody></table>") if listed else "")
            + h.section(f"Study table ({table}, {len(rows)} rows)", h.table(rows)))


def _rerun(folder: Path) -> str:
    command = f"transferlab rerun {shlex.quote(str(folder.resolve()))}"
    return (f"<p>The same options, data and seeds, into a new folder:</p><pre>{h.text(command)}</pre>")


def _files(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()
                   if p.name != REPORT and not p.name.startswith("."))
    return "<ul>" + "".join(f'<li><a href="{h.href(n)}">{h.text(n)}</a></li>' for n in names) + "</ul>"
