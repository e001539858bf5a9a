"""Readable figures and tables: `transferlab backbones` at 80 columns, predictions.png from the network's crop."""

from __future__ import annotations

import os
import subprocess
import sys

from PIL import Image


def test_backbones_table_fits_80_columns_and_keeps_names_whole():
    import json

    from transferlab.backbones.catalog import DATA_FILE

    env = {**os.environ, "COLUMNS": "80", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "transferlab", "backbones"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    first_words = {line.split()[0] for line in lines if line.strip()}
    # the built-in entries (not this process's live registry, where other tests may have registered their own)
    builtins = {entry["name"] for entry in json.loads(DATA_FILE.read_text())["backbones"]}
    assert builtins <= first_words  # one whole name per row, never cut or wrapped
    assert "pip install 'transferlab[timm]'" in done.stdout  # not eaten as rich markup


def test_predictions_figure_shows_the_networks_crop(tmp_path):
    from tests_helpers import make_color_folder
    from transferlab.backbones import load_backbone
    from transferlab.inspection.imagenet import plot_predictions, predict_imagenet

    folder = make_color_folder(tmp_path / "c", classes=("red",), per_class=2, size=48)
    Image.open(folder / "red" / "red_000.png").resize((80, 48)).save(tmp_path / "wide.png")
    net = load_backbone("digits_cnn", "none")
    results = predict_imagenet(net, [tmp_path / "wide.png", folder / "red" / "red_001.png"], k=3)
    crop = net.preprocessing.crop_size
    assert [r.crop.size for r in results] == [(crop, crop)] * 2  # resized and centre-cropped, as the network saw
    path = plot_predictions(results, None, tmp_path / "p.png", title="t")
    assert Image.open(path).size[0] > 300
