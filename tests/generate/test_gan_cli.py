"""`transferlab gan train|sample|interpolate` and `transferlab study gan` end to end on tiny budgets."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from transferlab.cli.main import main

TINY = ["--max-images", "160", "--batch-size", "32", "--max-batches", "2", "--nz", "16", "--ngf", "8", "--ndf", "8",
        "--device", "cpu"]


def run_cli(args):
    try:
        main(args)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def test_train_sample_interpolate_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["gan", "train", "--model", "conditional", "--epochs", "2", "--out", str(out), "--fid", *TINY]) == 0
    for name in ("samples/epoch_001.png", "samples/epoch_002.png", "samples.gif", "curves.png", "history.csv",
                 "metrics.json", "config.json", "checkpoint.pt", "log.txt", "model/model.json",
                 "model/tensors.safetensors"):
        assert (out / name).is_file(), name
    assert Image.open(out / "samples.gif").n_frames == 2
    # Conditional grid: 10 class rows x 8 noise columns of 32 px (+2 px padding), upscaled x2.
    assert Image.open(out / "samples/epoch_002.png").size == ((8 * 34 + 2) * 2, (10 * 34 + 2) * 2)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples"] == 1000 and metrics["chance"] == 0.1
    assert 0.0 <= metrics["class_recognition"] <= 1.0 and len(metrics["per_class_recognition"]) == 10
    assert metrics["frechet_judge"] > 0 and "fid_inception" in metrics
    assert metrics["fid_inception"] is not None or "FID (Inception) not computed" in metrics["fid_note"]
    printed = capsys.readouterr().out
    assert "class recognition" in printed and "epoch 2/2" in printed

    assert run_cli(["gan", "train", "--model", "conditional", "--epochs", "3", "--out", str(out), "--resume",
                    "--no-metrics", *TINY]) == 0
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert Image.open(out / "samples.gif").n_frames == 3

    samples = tmp_path / "samples"
    assert run_cli(["gan", "sample", str(out), "--per-class", "3", "--images", "--out", str(samples)]) == 0
    assert Image.open(samples / "samples.png").size == ((3 * 34 + 2) * 2, (10 * 34 + 2) * 2)
    assert sorted(p.name for p in (samples / "images").iterdir()) == [str(i) for i in range(10)]
    assert len(list((samples / "images" / "7").glob("*.png"))) == 3

    inter = tmp_path / "inter"
    assert run_cli(["gan", "interpolate", str(out), "--pairs", "2", "--steps", "6", "--label", "3", "--label", "7",
                    "--out", str(inter)]) == 0
    assert Image.open(inter / "interpolation.png").size == ((6 * 34 + 2) * 2, (2 * 34 + 2) * 2)
    assert json.loads((inter / "interpolation.json").read_text())["labels"] == [3, 7]


def test_cli_errors(tmp_path, capsys):
    assert run_cli(["gan", "train", "--data", "mnist", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "error: mnist is not available under" in capsys.readouterr().err
    assert run_cli(["gan", "train", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err
    assert run_cli(["gan", "train", "--g-loss", "hinge", "--out", str(tmp_path / "h"), *TINY]) == 2
    assert "unknown generator loss 'hinge'" in capsys.readouterr().err
    assert run_cli(["gan", "sample", str(tmp_path)]) == 2
    assert "is not a transferlab model" in capsys.readouterr().err
    assert run_cli(["study", "gan", "--imbalance", "8-8", "--out", str(tmp_path / "s")]) == 2
    assert "--imbalance takes ngf:ndf pairs" in capsys.readouterr().err


def test_unconditional_train_on_image_folder(color_dir, tmp_path):
    out = tmp_path / "colors_run"
    assert run_cli(["gan", "train", "--data", str(color_dir), "--epochs", "1", "--out", str(out), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["predicted_share"]) == 3 and "class_recognition" not in metrics
    assert Image.open(out / "samples/epoch_001.png").mode == "RGB"
    assert run_cli(["gan", "train", "--data", str(color_dir), "--out", str(color_dir / "inside"), *TINY]) == 2


@pytest.mark.slow
def test_study_gan(tmp_path):
    out = tmp_path / "study"
    assert run_cli(["study", "gan", "--epochs", "1", "--groups", "baseline,init,loss,nz,imbalance,conditional",
                    "--nz-values", "2,100", "--imbalance", "16:8", "--judge-epochs", "1", "--samples", "50",
                    "--max-images", "160", "--batch-size", "32", "--max-batches", "2", "--device", "cpu",
                    "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "gan_study.csv")))
    assert [r["variant"] for r in rows] == ["baseline", "init=default", "loss=minimax", "nz=2", "ngf=16,ndf=8",
                                            "conditional"]
    assert rows[2]["g_loss"] == "minimax" and float(rows[2]["loss_g"]) < 0  # log(1 - D) is negative
    assert rows[5]["class_recognition"] != "" and rows[0]["class_recognition"] == ""
    saturation = list(csv.DictReader(open(out / "gan_saturation.csv")))
    assert [int(r["d_updates"]) for r in saturation] == [0, 10, 50]
    assert float(saturation[-1]["ratio"]) > float(saturation[0]["ratio"])
    for name in ("gan_study.md", "gan_study.png", "gan_study_losses.png", "gan_saturation.md", "judge.json",
                 "config.json", "variants/nz_2/samples.gif", "variants/conditional/model/model.json"):
        assert (out / name).is_file(), name
