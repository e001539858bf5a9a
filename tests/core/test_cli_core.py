"""The core commands end to end, and the error convention (one line, exit code 2, --debug traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from tests_helpers import run_main
from transferlab.cli.main import app

runner = CliRunner()


def test_backbones_and_layers_listing():
    result = runner.invoke(app, ["backbones"])
    assert result.exit_code == 0 and "vgg16" in result.output and "timm/<name>" in result.output
    result = runner.invoke(app, ["layers", "vgg16"])
    assert result.exit_code == 0
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 3}
    assert "(4096,)" in lines["relu7"] and "classifier.4" in lines["relu7"]
    assert "(64, 224, 224)" in lines["conv1_1"] and "3,211,264" in lines["conv1_1"]


def test_extract_end_to_end(tmp_path, digits_dir):
    out = tmp_path / "out"
    result = runner.invoke(app, ["extract", str(digits_dir), "--backbone", "digits_cnn", "--weights", "none",
                                 "--train-per-class", "20", "--out", str(out), "--cache-dir", str(tmp_path / "c"),
                                 "--workers", "0", "--layer", "relu_fc2"])
    assert result.exit_code == 0, result.output
    with np.load(out / "features.npz") as data:
        assert data["X_train"].shape == (200, 128) and data["X_test"].shape == (1597, 128)
        assert data["classes"].tolist() == [str(d) for d in range(10)]
        assert data["y_train"].tolist() == sorted(data["y_train"].tolist())
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"] == "digits_cnn" and config["layers"] == ["relu_fc2"]
    assert config["preprocessing"]["crop_size"] == 32 and config["weights_id"] == "none:seed=0"
    assert (out / "skipped.txt").read_text() == ""


def test_extract_several_layers_writes_one_file_each(tmp_path, color_dir):
    out = tmp_path / "out"
    result = runner.invoke(app, ["extract", str(color_dir), "-b", "digits_cnn", "-w", "none", "--train-per-class",
                                 "4", "-o", str(out), "--no-cache", "--workers", "0", "-l", "pool3", "-l",
                                 "relu_fc2", "--pooling", "spp"])
    assert result.exit_code == 0, result.output
    with np.load(out / "features_pool3.npz") as data:
        assert data["X_train"].shape == (12, 128 * 5)


@pytest.mark.parametrize("args, message", [
    (["extract", "{data}", "--backbone", "vgg61"], "error: unknown backbone 'vgg61'; expected one of"),
    (["extract", "{data}", "-b", "digits_cnn", "-w", "none", "--layer", "relu9"],
     "error: unknown layer 'relu9' for digits_cnn; expected one of conv1"),
    (["extract", "{missing}", "-b", "digits_cnn", "-w", "none"], "error: data folder {missing} does not exist"),
    (["extract", "{data}", "-b", "digits_cnn", "-w", "{missing}.pth"], "error: weights file {missing}.pth does not exist"),
    (["extract", "{data}", "-b", "digits_cnn", "-w", "none", "--train-per-class", "50"],
     "error: class 'blue' has 12 images; --train-per-class 50 leaves none for testing"),
    (["extract", "{data}", "-b", "digits_cnn", "-w", "none", "--out", "{data}/out"], "error: output folder {data}/out is inside the input folder"),
])
def test_user_errors_print_one_line_and_exit_2(tmp_path, color_dir, capsys, args, message):
    fill = {"data": str(color_dir), "missing": str(tmp_path / "missing")}
    args = [a.format(**fill) for a in args]
    code, out, err = run_main(args + ["--no-cache"], capsys)
    assert code == 2
    assert err.startswith(message.format(**fill)) and err.count("\n") == 1 and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "transferlab", "--debug", "extract", str(tmp_path / "x"), "-b", "digits_cnn", "-w", "none"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "DataError" in proc.stderr


def test_python_dash_m_and_usage_errors():
    proc = subprocess.run([sys.executable, "-m", "transferlab", "extract"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Missing argument" in proc.stderr


def test_max_pixels_option_refuses_big_images_and_reports_them(tmp_path, color_dir):
    from PIL import Image

    Image.new("RGB", (100, 100), (200, 40, 40)).save(color_dir / "red" / "huge.png")  # 10,000 pixels
    out = tmp_path / "out"
    result = runner.invoke(app, ["extract", str(color_dir), "-b", "digits_cnn", "-w", "none", "--train-per-class",
                                 "4", "--out", str(out), "--no-cache", "--workers", "0", "--max-pixels", "2000"])
    assert result.exit_code == 0, result.output
    skipped = (out / "skipped.txt").read_text()
    assert "huge.png" in skipped and "10,000 pixels is more than the limit of 2,000" in skipped
    with np.load(out / "features.npz") as data:
        assert len(data["X_train"]) + len(data["X_test"]) == 36


def test_a_user_error_leaves_no_run_folder_behind(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["extract", str(tmp_path / "missing"), "-b", "digits_cnn", "-w", "none"], capsys)
    assert code == 2 and "does not exist" in err
    code, _, err = run_main(["gan", "sample", str(tmp_path)], capsys)
    assert code == 2
    assert not (tmp_path / "runs").exists()


def test_layers_of_an_unknown_backbone_is_one_line_and_all_lists_graph_nodes(capsys):
    code, _, err = run_main(["layers", "vgg61"], capsys)
    assert code == 2 and err.startswith("error: unknown backbone 'vgg61'") and err.count("\n") == 1
    result = runner.invoke(app, ["layers", "digits_cnn", "--all"])  # the live registry: graph nodes need torch
    assert result.exit_code == 0 and "relu_fc2" in result.output and "features.0 features.1" in result.output
