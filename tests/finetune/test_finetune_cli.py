"""End to end through the command line: finetune -> predict, errors, and the study."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from transferlab.cli.main import app, main
from transferlab.errors import ConfigError

FAST_ARGS = ["--backbone", "digits_cnn", "--weights", "none", "--batch-size", "8", "--test-fraction", "0.25",
             "--device", "cpu", "--workers", "0", "--no-progress"]


def test_finetune_then_predict_with_the_saved_model(tiny_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["finetune", str(tiny_dir), *FAST_ARGS, "--epochs", "2", "--freeze", "none",
                                 "--lr", "0.05", "--augment", "seed", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert "test accuracy" in result.output and f"{metrics['accuracy']:.4f}" in result.output
    with open(out / "predictions.csv") as handle:
        expected = {r["path"]: r["predicted"] for r in csv.DictReader(handle)}
    result = runner.invoke(app, ["predict", str(out / "model"), *expected, "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    got = {r["path"]: r["class"] for r in json.loads(result.output)["predictions"]}
    assert got == expected


def test_cli_errors_are_one_line_exit_2(tiny_dir, tmp_path, capsys):
    for args, message in [
        (["finetune", str(tiny_dir), *FAST_ARGS, "--freeze", "top", "--out", str(tmp_path / "a")],
         "unknown --freeze value 'top'"),
        (["finetune", "--dataset", "imagenet", "--backbone", "digits_cnn"], "unknown --dataset 'imagenet'"),
        (["finetune", str(tiny_dir), *FAST_ARGS, "--out", str(tiny_dir / "inside")], "inside the input folder"),
        (["finetune", str(tiny_dir), *FAST_ARGS, "--resume"], "--resume needs --out"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, err


def test_study_finetune_table_figures_svm_row_and_restart(tiny_dir, tmp_path):
    from transferlab.finetune.study import study_finetune

    out = tmp_path / "study"
    common = dict(backbones=["digits_cnn"], weights="none", freezes=["all-but-head", "none"], augments=["none"],
                  out=out, cache_dir=tmp_path / "cache", epochs=1, batch_size=8, test_fraction=0.25, device="cpu")
    result = study_finetune(tiny_dir, **common)
    rows = result["rows"]
    assert [(r["method"], r["freeze"]) for r in rows] == [("finetune", "all-but-head"), ("finetune", "none"),
                                                         ("linear-svm", "all (features)")]
    for name in ("study_finetune.csv", "study_finetune.md", "study_finetune.png", "study_finetune_curves.png"):
        assert (out / name).is_file()
    svm = json.loads((out / "svm/digits_cnn/metrics.json").read_text())
    assert rows[2]["test_accuracy"] == svm["accuracy"]
    for r in rows[:2]:
        assert r["test_accuracy"] == json.loads((out / r["run"] / "metrics.json").read_text())["accuracy"]

    def test_paths(folder):
        with open(folder / "predictions.csv") as handle:
            return sorted(row["path"] for row in csv.DictReader(handle))

    assert test_paths(out / "svm/digits_cnn") == test_paths(out / rows[0]["run"])  # the same test split
    for r in rows[:2]:  # each run's log holds its own epoch only (handlers are detached after a run)
        assert (out / r["run"] / "log.txt").read_text().count("epoch 1/1") == 1
    again = study_finetune(tiny_dir, **common)  # finished runs are reused, not retrained
    assert [r["test_accuracy"] for r in again["rows"]] == [r["test_accuracy"] for r in rows]
    with pytest.raises(ConfigError, match=r"holds study runs made with other options: "
                                          r"runs/digits_cnn-all-but-head-none \(epochs: saved 1, now 2, "
                                          r"lr: saved 0.01, now 0.05\).*choose another --out"):
        study_finetune(tiny_dir, **{**common, "epochs": 2, "lr": 0.05})  # not reused under the new options
    assert json.loads((out / "config.json").read_text())["epochs"] == 1  # nor its config rewritten
