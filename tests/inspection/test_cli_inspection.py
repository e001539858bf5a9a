"""The inspection commands end to end (files and numbers they write) and their documented errors."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from tests_helpers import run_main
from transferlab.cli.main import app

from inspection_helpers import make_odd_folder

runner = CliRunner()


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_inspect_vgg16(tmp_path):
    out = tmp_path / "inspect"
    result = runner.invoke(app, ["inspect", "vgg16", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "138,357,544" in result.output and "89.4%" in result.output and "1,000 outputs" in result.output
    rows = read_csv(out / "architecture.csv")
    assert rows[-1]["module"] == "total" and rows[-1]["params"] == "138357544"
    fc6 = next(r for r in rows if r["cut_point"] == "fc6")
    assert fc6["params"] == "102764544" and fc6["output_shape"] == "4096"
    assert (out / "architecture.md").read_text().startswith("| module |")
    assert (out / "architecture.png").stat().st_size > 10_000
    assert json.loads((out / "config.json").read_text())["input_size"] == 224
    assert json.loads((out / "summary.json").read_text())["fc_params"] == 123_642_856


def test_inspect_json(tmp_path):
    result = runner.invoke(app, ["inspect", "alexnet", "--json", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["total_params"] == 61_100_840 and (data["n_conv"], data["n_fc"]) == (5, 3)
    assert data["layers"][0]["cut_point"] == "conv1" and data["layers"][0]["params"] == 64 * 3 * 121 + 64


def test_predict_imagenet(tmp_path, photos):
    out = tmp_path / "pred"
    args = ["predict-imagenet", *map(str, photos), "-b", "alexnet", "-w", "none", "--no-normalize",
            "--train-mode", "--passes", "2", "--top", "3", "--device", "cpu", "--out", str(out), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["weights_id"] == "none:seed=0" and len(data["predictions"]) == 2
    first = data["predictions"][0]
    probs = [r["probability"] for r in first["eval"]]
    assert probs == sorted(probs, reverse=True) and len(probs) == 3
    assert len(first["no_normalize"]) == 3 and first["train_mode"]["passes"] == 2
    rows = read_csv(out / "predictions.csv")
    assert len(rows) == 2 * 3 * (1 + 1 + 2)
    assert {r["variant"] for r in rows} == {"eval", "no_normalize", "train_mode"}
    assert (out / "predictions.png").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["preprocessing"]["crop_size"] == 224 and config["passes"] == 2


def test_activations(tmp_path, photos):
    out = tmp_path / "act"
    result = runner.invoke(app, ["activations", "vgg16", str(photos[0]), "-w", "none", "--layer", "conv1_1",
                                 "--top", "4", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "channels.csv")
    assert len(rows) == 64 and [r["shown"] for r in rows[:5]] == ["True"] * 4 + ["False"]
    means = [float(r["mean"]) for r in rows]
    assert means == sorted(means, reverse=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shape"] == [64, 224, 224] and summary["first_conv"] == "features.0"
    assert summary["channels_shown"] == [int(r["channel"]) for r in rows[:4]]
    assert (out / "activations.png").stat().st_size > 10_000 and (out / "filters.png").is_file()


def test_data_inspect(tmp_path):
    data = make_odd_folder(tmp_path / "odd")
    out = tmp_path / "summary"
    result = runner.invoke(app, ["data", "inspect", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "9 images, 2 classes, 3 distinct resolutions, 5 skipped files" in result.output
    for name in ("classes", "resolutions", "color_modes", "skipped"):
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.md").is_file()
    assert (out / "resolutions.png").is_file() and (out / "samples.png").is_file()
    assert {r["file"] for r in read_csv(out / "skipped.csv")} >= {"cat/empty.jpg", "dog/notes.txt"}
    assert json.loads((out / "summary.json").read_text())["modes"] == {"RGB": 6, "RGBA": 1, "L": 1, "I;16": 1}
    assert sorted(p.name for p in data.iterdir()) == [".DS_Store", "README.txt", "cat", "dog"]  # nothing written


@pytest.mark.parametrize("args, message", [
    (["inspect", "vgg61"], "error: unknown backbone 'vgg61'; expected one of"),
    (["activations", "vgg16", "{photo}", "-w", "none", "--layer", "conv9"],
     "error: unknown layer 'conv9' for vgg16; expected one of conv1_1, relu1_1"),
    (["activations", "vgg16", "{tmp}/missing.png", "-w", "none"], "missing.png does not exist"),
    (["predict-imagenet", "{tmp}/missing.png", "-w", "none"], "error: image {tmp}/missing.png does not exist"),
    (["data", "inspect", "{tmp}/nowhere", "--out", "{tmp}/o"], "error: data folder {tmp}/nowhere does not exist"),
    (["data", "inspect", "{tmp}", "--out", "{tmp}/o"], "transferlab never writes into data folders"),
])
def test_errors(args, message, tmp_path, photos, capsys):
    fill = {"photo": str(photos[0]), "tmp": str(tmp_path)}
    code, _, err = run_main([a.format(**fill) for a in args], capsys)
    assert code == 2 and message.format(**fill) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
