"""Issue 17 items 4 and 10: parameter counts and timing in metrics.json, --input-size, noise/cutout blocks,
grayscale fine-tuning (sum-filters, learnt), all through the saved model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ft_helpers import FAST
from PIL import Image
from torchvision.transforms import v2

from transferlab.backbones import load_backbone
from transferlab.errors import ConfigError
from transferlab.finetune import FinetuneConfig, FinetunedModel, finetune
from transferlab.finetune.augment import parse_augment, pixel_transform, tensor_blocks, train_transform
from transferlab.training import History


def test_metrics_report_parameters_time_and_throughput(tiny_dir, tmp_path):
    out = tmp_path / "run"
    metrics = finetune(tiny_dir, **FAST, epochs=2, augment="none", out=out, patience=None)
    saved = json.loads((out / "metrics.json").read_text())
    net = load_backbone("digits_cnn", "none").model
    total = sum(p.numel() for p in net.parameters()) - net.classifier[-1].weight.numel() \
        - net.classifier[-1].bias.numel() + 3 * net.classifier[-1].in_features + 3
    head = 3 * net.classifier[-1].in_features + 3
    assert saved["total_params"] == total and saved["trainable_params"] == head  # all-but-head: the head only
    rows = History.from_csv(out / "history.csv").rows
    assert saved["train_time_s"] == pytest.approx(sum(r["epoch_time_s"] for r in rows))
    assert saved["train_images_seen"] == sum(r["train_images"] for r in rows) == 2 * 18
    assert saved["train_images_per_s"] == pytest.approx(36 / saved["train_time_s"])
    assert saved["wall_time_s"] >= saved["train_time_s"] > 0
    assert saved["input_size"] == 32 and saved["grayscale"] == "duplicate" and metrics["trainable_params"] == head


def test_freeze_none_trains_every_parameter(tiny_dir, tmp_path):
    saved = finetune(tiny_dir, **FAST, epochs=1, augment="none", freeze="none", out=tmp_path / "r", patience=None)
    assert saved["trainable_params"] == saved["total_params"]


def test_input_size_scales_the_resize_and_reaches_the_saved_model(tiny_dir, tmp_path):
    cfg = FinetuneConfig.from_options(backbone="resnet18", weights="none", input_size=112)
    from transferlab.finetune.trainer import at_input_size, build_network

    bb, _ = build_network(cfg, 3)
    assert (bb.preprocessing.crop_size, bb.preprocessing.resize_size) == (112, 128)  # 256 * 112 / 224
    pre = load_backbone("digits_cnn", "none").preprocessing
    assert at_input_size(pre, None) == pre and at_input_size(pre, 48).crop_size == 48
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="--input-size 40: digits_cnn cannot take 40x40 images"):
        finetune(tiny_dir, **FAST, epochs=1, input_size=40, out=tmp_path / "refused")
    finetune(tiny_dir, **{**FAST, "backbone": "resnet18"}, epochs=1, augment="light", input_size=40, out=out,
             patience=None)
    model = FinetunedModel.load(out / "model")
    assert model.preprocessing.crop_size == 40 and model.meta["input_size"] == 40
    config = json.loads((out / "config.json").read_text())
    assert config["input_size"] == 40 and config["preprocessing"]["crop_size"] == 40
    images = sorted(tiny_dir.rglob("*.png"))[:2]
    scores, kept, _ = model.predict_scores(images, device="cpu")
    assert scores.shape == (2, 3) and kept == [0, 1]
    x = train_transform(model.preprocessing, "light")(Image.open(images[0]).convert("RGB"))
    assert x.shape == (3, 40, 40)
    with pytest.raises(ConfigError, match="--input-size must be at least 8"):
        FinetuneConfig.from_options(backbone="digits_cnn", input_size=4)


def test_noise_and_cutout_blocks():
    pre = load_backbone("digits_cnn", "none").preprocessing
    assert parse_augment("seed+cutout+noise") == ("seed", ("cutout", "noise"))
    assert parse_augment("none") == ("none", ())
    blocks = tensor_blocks(("noise", "cutout"), pre).transforms
    assert isinstance(blocks[0], v2.GaussianNoise) and blocks[0].sigma == 0.1 and blocks[0].clip
    assert isinstance(blocks[1], v2.RandomErasing) and blocks[1].p == 0.5 and blocks[1].value == [0.5, 0.5, 0.5]
    with pytest.raises(ConfigError, match="'blur' is not a block or is repeated.*noise, cutout"):
        parse_augment("light+blur")
    with pytest.raises(ConfigError, match="is not a block or is repeated"):
        parse_augment("light+noise+noise")
    with pytest.raises(ConfigError, match="unknown --augment preset 'heavy'"):
        FinetuneConfig.from_options(backbone="digits_cnn", augment="heavy+noise")
    img = Image.fromarray(np.full((32, 32, 3), 128, np.uint8))
    torch.manual_seed(0)
    noisy = pixel_transform(pre, "none+noise")(img)
    assert noisy.shape == (3, 32, 32) and 0.0 <= noisy.min() and noisy.max() <= 1.0
    assert 0.05 < float((noisy - 128 / 255).std()) < 0.15  # sigma 0.1, clipped
    erased = 0
    for seed in range(20):
        torch.manual_seed(seed)
        x = pixel_transform(pre, "none+cutout")(Image.fromarray(np.full((32, 32, 3), 255, np.uint8)))
        patch = (x == 0.5).all(0)  # the patch is the mean (0 once normalised)
        erased += int(patch.any())
        assert ((x == 1.0).all(0) | patch).all()
    assert 4 <= erased <= 16  # p = 0.5
    x = train_transform(pre, "none+cutout")(Image.fromarray(np.full((32, 32, 3), 255, np.uint8)))
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("mode", ["sum-filters", "learnt"])
def test_grayscale_finetuning_end_to_end(tiny_dir, tmp_path, mode):
    out = tmp_path / mode
    metrics = finetune(tiny_dir, **FAST, epochs=1, augment="light+cutout", grayscale=mode, out=out, patience=None)
    model = FinetunedModel.load(out / "model")
    assert model.meta["grayscale"] == mode and len(model.preprocessing.mean) == 1
    first = model.model.features[0]
    if mode == "sum-filters":
        assert first.in_channels == 1
        assert metrics["trainable_params"] == 3 * model.model.classifier[-1].in_features + 3
    else:
        assert isinstance(first, torch.nn.Sequential) and first[0].weight.shape == (3, 1, 1, 1)
        # the adapter trains even with the backbone frozen (all-but-head): head + 3 weights + 3 biases
        assert metrics["trainable_params"] == 3 * model.model.classifier[-1].in_features + 3 + 6
    images = sorted(tiny_dir.rglob("*.png"))[:3]
    scores, kept, _ = model.predict_scores(images, device="cpu")
    assert scores.shape == (3, 3) and np.allclose(scores.sum(1), 1, atol=1e-5)
    # as_torch_module takes RGB like every model (explain, export): luma first, exact on a gray image
    from transferlab.data.transforms import image_transform

    gray = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8), mode="L")
    rgb_in = image_transform(model.preprocessing)(gray.convert("RGB")).expand(3, -1, -1)[None]
    with torch.no_grad():
        via_rgb = model.as_torch_module()(rgb_in)
        direct = model.model(image_transform(model.preprocessing)(gray)[None])
    assert rgb_in.shape[1] == 3 and (via_rgb - direct).abs().max() < 1e-5


def test_study_repeats_report_mean_and_std_on_the_same_images(tiny_dir, tmp_path):
    import csv

    from transferlab.finetune.study import study_finetune

    out = tmp_path / "study"
    common = dict(backbones=["digits_cnn"], weights="none", freezes=["none"], augments=["light"], out=out,
                  cache_dir=tmp_path / "cache", epochs=1, batch_size=8, test_fraction=0.25, device="cpu", lr=0.05,
                  seed=5, repeats=2)
    result = study_finetune(tiny_dir, **common)
    runs = [r for r in result["runs"] if r["method"] == "finetune"]
    assert [r["seed"] for r in runs] == [5, 6]
    assert [r["run"] for r in runs] == [f"runs/digits_cnn-none-light-seed{k}" for k in (5, 6)]
    accs = [json.loads((out / r["run"] / "metrics.json").read_text())["accuracy"] for r in runs]
    row = result["rows"][0]
    assert row["n_repeats"] == 2 and row["test_accuracy"] == pytest.approx(np.mean(accs))
    assert row["test_accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    assert row["test_accuracy_pm"] == f"{np.mean(accs):.4f} ± {np.std(accs, ddof=1):.4f}"
    for r in runs:  # training seeds differ, the splits keep --seed
        config = json.loads((out / r["run"] / "config.json").read_text())
        assert config["seed"] == r["seed"] and config["split_seed"] == 5

    def test_paths(folder):
        with open(folder / "predictions.csv") as handle:
            return sorted(row["path"] for row in csv.DictReader(handle))

    assert test_paths(out / runs[0]["run"]) == test_paths(out / runs[1]["run"]) == test_paths(out / "svm/digits_cnn")
    weights = [FinetunedModel.load(out / r["run"] / "model").model.classifier[-1].weight for r in runs]
    assert not torch.equal(weights[0], weights[1])  # the repeats are different trainings
    svm = result["rows"][1]
    assert svm["method"] == "linear-svm" and svm["n_repeats"] == 1 and svm["test_accuracy_std"] == 0.0
    assert (out / "study_finetune_runs.csv").is_file() and "±" in (out / "study_finetune.md").read_text()
    assert (out / "study_finetune.png").is_file()
    with pytest.raises(ConfigError, match="--repeats must be at least 1"):
        study_finetune(tiny_dir, **{**common, "repeats": 0, "out": tmp_path / "other"})


def test_cli_finetune_grayscale_then_predict_reproduces_the_test_predictions(tiny_dir, tmp_path):
    import csv

    from typer.testing import CliRunner

    from transferlab.cli.main import app

    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["finetune", str(tiny_dir), "-b", "digits_cnn", "--weights", "none", "--batch-size",
                                 "8", "--test-fraction", "0.25", "--device", "cpu", "--workers", "0", "--no-progress",
                                 "--epochs", "1", "--freeze", "none", "--grayscale", "learnt", "--augment",
                                 "light+noise+cutout", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"{metrics['trainable_params']:,} of {metrics['total_params']:,} parameters trained" in result.output
    assert metrics["augment"] == "light+noise+cutout" and metrics["grayscale"] == "learnt"
    with open(out / "predictions.csv") as handle:
        expected = {r["path"]: r["predicted"] for r in csv.DictReader(handle)}
    result = runner.invoke(app, ["predict", str(out / "model"), *expected, "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.output)["predictions"]
    assert {r["path"]: r["class"] for r in predictions} == expected
    first = next(iter(expected))  # explanations of the 1-channel model (RGB pixels, luma inside)
    result = runner.invoke(app, ["explain", "gradcam", first, "-m", str(out / "model"), "--device", "cpu", "--out",
                                 str(tmp_path / "cam")])
    assert result.exit_code == 0, result.output
    assert f"{Path(first).name}: " in result.output and (tmp_path / "cam" / "gradcam.png").is_file()
