"""Layer study: end to end, equality with `transferlab run`, the heatmap's composite taps, the cache."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from transferlab.backbones import load_backbone, make_taps
from transferlab.classify import choose_C, run_linear
from transferlab.errors import ConfigError
from transferlab.studies import LayersStudy, default_layers, grid_axes, run_study

LAYERS = ["relu3", "pool3", "relu_fc2"]


def test_layers_study_end_to_end_matches_run(tiny_digits, make_options, linear, tmp_path):
    options = make_options()
    result = run_study(LayersStudy(tiny_digits, options, linear, layers=LAYERS), tmp_path / "out", progress=False)
    out = result.out
    for name in ("layers.csv", "layers.md", "depth_curve.png", "heatmap.png", "config.json", "summary.json",
                 "results.jsonl"):
        assert (out / name).stat().st_size > 0, name
    depth = [r for r in result.rows if r["part"] == "depth"]
    cells = [r for r in result.rows if r["part"] == "heatmap"]
    assert [r["layer"] for r in depth] == LAYERS
    assert len(cells) == 2 * 5  # relu5, pool3 x fc1, relu_fc1, fc2, relu_fc2, logits
    assert {r["pooling"] for r in depth} == {"avg", "none"}  # relu_fc2 is a vector: never pooled
    sizes = {r["layer"]: r["feature_size"] for r in depth}
    assert sizes == {"relu3": 64, "pool3": 128, "relu_fc2": 128}
    for row in depth:  # the same settings through `transferlab run`'s library verb give the same accuracy
        np.random.seed(0)
        metrics = run_linear(tiny_digits, tmp_path / f"run-{row['layer']}",
                             replace(options, layers=[row["layer"]], pooling=row["pooling"]), replace(linear))
        assert row["test_acc"] == metrics["accuracy"]
        assert row["n_test"] == metrics["n_test"] and row["feature_size"] == metrics["feature_size"]
    csv_text = (out / "layers.csv").read_text()
    assert csv_text.splitlines()[0].startswith("key,part,depth,layer")
    assert len(csv_text.splitlines()) == 1 + len(result.rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_layer_by_cv"] in LAYERS and summary["max_rss_mb"] > 0
    assert all(r["max_rss_mb"] > 0 and r["peak_traced_mb"] > 0 for r in result.rows)


def test_cv_accuracy_is_choose_C_on_train(tiny_digits, make_options, linear, tmp_path):
    from transferlab.pipeline import features_for

    options = make_options()
    result = run_study(LayersStudy(tiny_digits, options, linear, layers=["relu_fc2"], heatmap=False),
                       tmp_path / "out", progress=False)
    feats = features_for(tiny_digits, replace(options, layers=["relu_fc2"], pooling="none")).features["relu_fc2"]
    _, curve = choose_C("svm", feats.X_train, feats.y_train, (1.0,), 3, None, 0)
    assert result.rows[0]["cv_acc"] == curve[0]["cv_mean"] and result.rows[0]["cv_std"] == curve[0]["cv_std"]


def test_heatmap_axes_and_composite_taps_match_the_network():
    backbone = load_backbone("digits_cnn", "none", seed=3)
    axes = grid_axes(backbone.spec)
    assert axes.conv == ["relu5", "pool3"] and axes.grid == (4, 4) and axes.channels == 128
    assert axes.classifier == ["fc1", "relu_fc1", "fc2", "relu_fc2", "logits"]
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():  # the cells are ordinary layers of the registry: the one tap service computes them
        cells = make_taps(backbone.spec, backbone.model, [axes.cell("pool3", k) for k in axes.classifier])(x)
        plain = make_taps(backbone.spec, backbone.model, ["fc1", "relu_fc1", "relu_fc2", "logits"])(x)
        relu5 = make_taps(backbone.spec, backbone.model, ["relu5"])(x)["relu5"]
        fc1_from_relu5 = make_taps(backbone.spec, backbone.model, ["relu5>fc1"])(x)["relu5>fc1"]
    # the full trunk + classifier prefix is the network's own layer (4x4 grid: the pooling is the identity)
    for name in ("fc1", "relu_fc1", "relu_fc2", "logits"):
        torch.testing.assert_close(cells[f"pool3>{name}"], plain[name])
    assert (cells["pool3>fc1"] < 0).any() and (plain["fc1"] < 0).any()  # the in-place ReLU overwrote neither
    # an earlier conv cut: 8x8 map averaged to the 4x4 grid, then the pretrained fc1
    fc1 = backbone.model.classifier[1]
    expected = fc1(torch.nn.functional.adaptive_avg_pool2d(relu5, (4, 4)).flatten(1))
    torch.testing.assert_close(fc1_from_relu5, expected)


def test_vgg16_axes_follow_report_001():
    from transferlab.backbones import get_spec

    axes = grid_axes(get_spec("vgg16"))
    assert axes.conv == ["relu4_1", "relu4_2", "relu4_3", "pool4", "relu5_1", "relu5_2", "relu5_3", "pool5"]
    assert axes.classifier == ["fc6", "relu6", "fc7", "relu7", "fc8"] and axes.grid == (7, 7)
    assert grid_axes(get_spec("resnet18")) is None


def test_default_layers():
    from transferlab.backbones import get_spec

    class _B:  # default_layers only reads the spec
        def __init__(self, spec):
            self.spec = spec

    layers = default_layers(_B(get_spec("vgg16")))
    assert layers[:3] == ["relu1_1", "relu1_2", "pool1"] and layers[-3:] == ["pool5", "relu6", "relu7"]
    assert len(layers) == 13 + 5 + 2
    assert default_layers(_B(get_spec("resnet18"))) == ["conv1", "pool1", "layer1", "layer2", "layer3", "layer4",
                                                         "avgpool", "pre_logits"]


def test_second_study_on_same_layers_runs_no_forward_pass(tiny_digits, make_options, linear, tmp_path, monkeypatch):
    import transferlab.features.extract as extract

    options = make_options(cache_dir=tmp_path / "cache")
    first = run_study(LayersStudy(tiny_digits, options, linear, layers=["pool3", "relu_fc2"]), tmp_path / "a",
                      progress=False)
    assert sum(r["images_forwarded"] for r in first.rows) > 0
    calls = []
    original = extract._run_missing_shards
    monkeypatch.setattr(extract, "_run_missing_shards", lambda *a, **k: calls.append(1) or original(*a, **k))
    second = run_study(LayersStudy(tiny_digits, options, linear, layers=["pool3", "relu_fc2"]), tmp_path / "b",
                       progress=False)
    assert calls == [] and all(r["images_forwarded"] == 0 for r in second.rows)
    assert [r["test_acc"] for r in second.rows] == [r["test_acc"] for r in first.rows]


def test_layer_errors(tiny_digits, make_options, linear):
    with pytest.raises(ConfigError, match="unknown layer 'relu9'"):
        LayersStudy(tiny_digits, make_options(), linear, layers=["relu9"])
    with pytest.raises(ConfigError, match="--heatmap needs"):
        LayersStudy(tiny_digits, make_options(backbone="resnet18"), linear, layers=["layer4"], heatmap=True)


@pytest.mark.slow
def test_vgg16_composite_cells_match_relu7_and_feed_fc6_from_relu5_1():
    backbone = load_backbone("vgg16", "none", seed=0)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        cells = make_taps(backbone.spec, backbone.model, ["pool5>relu7", "relu5_1>fc6"])(x)
        relu7 = make_taps(backbone.spec, backbone.model, ["relu7"])(x)["relu7"]
    torch.testing.assert_close(cells["pool5>relu7"], relu7)
    assert cells["relu5_1>fc6"].shape == (2, 4096)


def test_a_composite_cell_through_run_equals_the_studys_cell(tiny_digits, make_options, linear, shared_cache,
                                                             tmp_path):
    from typer.testing import CliRunner

    from transferlab.cli.main import app

    study = run_study(LayersStudy(tiny_digits, make_options(), linear, layers=["relu5"]), tmp_path / "study",
                      progress=False)
    cell = next(r for r in study.rows if r["layer"] == "relu5>fc1")
    np.random.seed(0)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(tiny_digits), "-b", "digits_cnn", "-w", "none", "--train-per-class",
                                      "6", "--layer", "relu5>fc1", "--out", str(out), "--cache-dir",
                                      str(shared_cache), "--workers", "0", "--batch-size", "64"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["layer"] == "relu5>fc1" and metrics["feature_size"] == cell["feature_size"] == 256
    assert metrics["accuracy"] == cell["test_acc"]
