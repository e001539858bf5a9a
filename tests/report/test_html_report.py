"""report.html of runs and studies, the index page and its server: contents checked against the run's files."""

from __future__ import annotations

import csv
import json
import os
import re
import threading
import urllib.request

import numpy as np
import pytest
from typer.testing import CliRunner

from html_check import check_page
from transferlab.cli.main import app
from transferlab.report import html as h
from transferlab.report.index import find_runs, index_url, make_server, write_index
from transferlab.report.misclassified import LIMIT, misclassified
from transferlab.report.run_page import write_html_report
from transferlab.runs import Run

runner = CliRunner()


def _wrong(folder):
    with open(folder / "predictions.csv", newline="") as handle:
        return [r for r in csv.DictReader(handle) if r["true"] != r["predicted"]]


def test_escaping_and_links_keep_any_name():
    assert h.text('<b a="1">&') == "&lt;b a=&quot;1&quot;&gt;&amp;"
    assert h.text(os.fsdecode(b"zero\xff")) == "zero\\xff"  # a lone surrogate never reaches the page
    assert h.href(os.fsdecode(b"r\xfe <x>/report.html")) == "r%FE%20%3Cx%3E/report.html"
    assert h.fmt_number(0.98333333) == "0.9833" and h.fmt_number(2.0) == "2" and h.fmt_number(1e-4) == "0.0001"


def test_linear_run_report_shows_its_numbers_errors_and_gradcam(report_runs):
    runs, _ = report_runs
    folder = runs / "linear"
    metrics = json.loads((folder / "metrics.json").read_text())
    page = check_page(folder / "report.html")  # written by the Run hook
    text = " ".join(page.text)
    assert h.fmt_number(metrics["accuracy"]) in text and "digits_cnn" in text and "relu_fc2" in text
    assert f"transferlab rerun {folder.resolve()}" in text
    html = (folder / "report.html").read_text()
    # per-class table: one row per class with its recall
    for name, row in metrics["per_class"].items():
        assert re.search(rf"<td>{name}</td><td[^>]*>{re.escape(h.text(row['precision']))}</td>", html)
    # the confusion matrix as a table: its diagonal is the per-class correct count
    diagonal = [int(v) for v in re.findall(r'<td class="num diag">(\d+)</td>', html)]
    assert diagonal == [metrics["confusion_matrix"][i][i] for i in range(len(metrics["classes"]))]
    # every misclassified image up to the limit, each with the network's crop and a Grad-CAM overlay
    wrong = _wrong(folder)
    assert wrong, "the tiny run must make mistakes for this test"
    shown = min(len(wrong), LIMIT)
    assert html.count('<div class="thumb">') == shown
    assert sum(1 for im in page.images if im["alt"].startswith("Grad-CAM of")) == shown
    assert {"confusion_matrix.png", "predictions.csv", "model/"} <= {a.strip() for a in page.text}


def test_misclassified_scores_are_the_saved_models(report_runs):
    """The score shown for each image is the saved model's own score of the predicted class."""
    from transferlab.classify import load_model

    runs, data = report_runs
    folder = runs / "linear"
    cwd = json.loads((folder / "config.json").read_text())["call"]["cwd"]
    items, total = misclassified(folder, limit=5, cwd=cwd)
    assert total == len(_wrong(folder)) and len(items) == min(5, total)
    assert len({i.true for i in items}) == min(len({r["true"] for r in _wrong(folder)}), 5)  # spread over classes
    model = load_model(folder / "model")
    scores, kept, _ = model.predict_scores([os.path.join(cwd, i.path) for i in items], device="cpu",
                                           use_cache=False)
    assert kept == list(range(len(items)))
    for item, row in zip(items, scores):
        assert model.classes[int(np.argmax(row))] == item.predicted
        assert item.score == pytest.approx(float(row.max()), rel=1e-3, abs=1e-4)
        assert item.overlay_png is not None and item.note.startswith("Grad-CAM at")


def test_finetune_report_has_curves_history_and_gradcam(report_runs):
    runs, _ = report_runs
    folder = runs / "finetune"
    page = check_page(folder / "report.html")
    html = (folder / "report.html").read_text()
    assert "Training curves" in html and "history.csv (2 epochs)" in html
    assert any(im["alt"] == "curves.png" for im in page.images)
    wrong = _wrong(folder)
    assert sum(1 for im in page.images if im["alt"].startswith("Grad-CAM of")) == min(len(wrong), LIMIT)


def test_a_damaged_model_still_leaves_the_misclassified_thumbnails(report_runs, tmp_path):
    import shutil

    runs, _ = report_runs
    folder = shutil.copytree(runs / "linear", tmp_path / "lin")
    (folder / "model" / "tensors.safetensors").write_bytes(b"not tensors")
    page = check_page(write_html_report(folder))
    html = (folder / "report.html").read_text()
    shown = min(len(_wrong(folder)), LIMIT)
    assert html.count('<div class="thumb">') == shown and "the saved model could not score these images" in html
    assert not any(im["alt"].startswith("Grad-CAM of") for im in page.images)
    assert sum(1 for im in page.images if im.get("class") == "thumb-img") == shown  # the files' thumbnails


def test_curves_are_drawn_from_the_history_when_the_run_left_no_figure(report_runs, tmp_path):
    import shutil

    runs, _ = report_runs
    folder = shutil.copytree(runs / "finetune", tmp_path / "ft")
    (folder / "curves.png").unlink()
    page = check_page(write_html_report(folder))
    assert [im["alt"] for im in page.images].count("curves (from history.csv)") == 1


def test_study_report_has_its_table_and_figures(report_runs):
    runs, _ = report_runs
    folder = runs / "study"
    page = check_page(folder / "report.html")
    with open(folder / "layers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    html = (folder / "report.html").read_text()
    assert f"Study table (layers.csv, {len(rows)} rows)" in html and len(rows) == 2
    assert {im["alt"] for im in page.images} == {p.name for p in folder.glob("*.png")}
    summary = json.loads((folder / "summary.json").read_text())
    assert h.text(summary["best_layer_by_cv"]) in " ".join(page.text)


def test_index_lists_every_run_and_regenerates_missing_reports(report_runs, tmp_path):
    import shutil

    runs, _ = report_runs
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    (copy / "study" / "report.html").unlink()
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert "3 run(s)" in result.output and (copy / "study" / "report.html").is_file()
    page = check_page(copy / "index.html")
    assert sorted(page.links) == ["finetune/report.html", "linear/report.html", "study/report.html"]
    html = (copy / "index.html").read_text()
    accuracy = json.loads((copy / "linear" / "metrics.json").read_text())["accuracy"]
    assert re.search(rf'<td class="num" data-sort="{re.escape(repr(float(accuracy)))}">', html)
    assert [f.name for f in find_runs(copy)] == ["finetune", "linear", "study"]


def test_names_with_any_bytes_give_a_valid_page(tmp_path):
    """Class and run folder names with markup characters and non-UTF-8 bytes: escaped text, working links."""
    from tests_helpers import make_color_folder

    data = make_color_folder(tmp_path / "d", classes=("red", "green"), per_class=6, size=32)
    os.rename(data / "red", os.path.join(os.fsencode(data), b"r<b>&\xff"))
    runs = tmp_path / "runs"
    out = runs / os.fsdecode(b"run \xfe <x>")
    from transferlab.classify import run_linear

    run_linear(data, out, backbone="digits_cnn", weights="none", workers=0, use_cache=False, train_per_class=2,
               progress=False)
    page = check_page(out / "report.html")
    html = (out / "report.html").read_text()
    assert "r&lt;b&gt;&amp;\\xff" in html and "<b>&" not in html
    index, rows = write_index(runs)
    assert check_page(index).links == ["run%20%FE%20%3Cx%3E/report.html"]
    assert page.images  # the confusion matrix at least


def test_a_failing_report_never_fails_the_run(tmp_path, monkeypatch):
    import transferlab.report.run_page as run_page

    def broken(folder):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(run_page, "write_html_report", broken)
    with Run("test", "transferlab.runs:rerun", {}, tmp_path / "r"):
        pass
    assert json.loads((tmp_path / "r" / "status.json").read_text())["status"] == "done"
    assert "report.html not written: RuntimeError: disk on fire" in (tmp_path / "r" / "log.txt").read_text()
    assert not (tmp_path / "r" / "report.html").exists()


def test_report_of_a_folder_without_results_and_a_missing_runs_dir(tmp_path):
    with Run("test", "transferlab.runs:rerun", {}, tmp_path / "r"):
        pass
    page = check_page(tmp_path / "r" / "report.html")
    assert "done" in page.text and "Files" in page.text
    assert write_html_report(tmp_path / "r") == tmp_path / "r" / "report.html"
    result = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code != 0 and "is not a folder of runs" in str(result.exception)


def test_serve_answers_on_localhost(tmp_path):
    with Run("test", "transferlab.runs:rerun", {}, tmp_path / "runs" / "a"):
        pass
    write_index(tmp_path / "runs")
    server = make_server(tmp_path / "runs", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = index_url(server)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/index\.html", url)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and b"a/report.html" in response.read()
        with urllib.request.urlopen(url.replace("index.html", "a/report.html"), timeout=10) as response:
            assert b"transferlab test" in response.read()
    finally:
        server.shutdown()
        server.server_close()
