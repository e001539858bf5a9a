"""Each page kind (run report, study report, index) rendered by a real browser: headless Chromium from the
distribution's packages (no browser download at run time). Skipped, with the reason, where none is installed."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from transferlab.report.index import write_index
from transferlab.report.run_page import describe

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium); "
                                                         "CI installs it")


def render(page, screenshot, profile, size="1200,1600", query="") -> str:
    """Load ``page`` in headless Chromium; write a screenshot; return the DOM after the load event."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={screenshot}",
               f"--window-size={size}", "--dump-dom", page.resolve().as_uri() + query]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("kind", ["linear", "study", "index"])
def test_page_renders_with_every_image_loaded(report_runs, tmp_path, kind):
    runs, _ = report_runs
    page = write_index(runs)[0] if kind == "index" else runs / kind / "report.html"
    shot = tmp_path / f"{kind}.png"
    dom = render(page, shot, tmp_path / "profile", query="?sort=metric" if kind == "index" else "")
    body = re.search(r"<body[^>]*>", dom).group(0)
    loaded = int(re.search(r'data-images-loaded="(\d+)"', body).group(1))
    total = int(re.search(r'data-images-total="(\d+)"', body).group(1))
    assert 'data-images="ok"' in body and loaded == total  # the page's script ran after every image decoded
    assert total > 0 if kind != "index" else total == 0
    if kind == "index":  # every run linked, and the page's own script sorted the rows by metric (ascending)
        metrics = {f: describe(runs / f)["metric"] for f in ("linear", "finetune", "study")}
        order = re.findall(r'href="(\w+)/report.html"', dom)
        assert sorted(order) == sorted(metrics) and [metrics[f] for f in order] == sorted(metrics.values())
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1600, 1200)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, tables and figures, not a blank page
