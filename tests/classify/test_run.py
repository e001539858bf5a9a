"""`transferlab run`, the classifier options, honest C selection, saved models and `predict`."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix
from sklearn.svm import LinearSVC
from typer.testing import CliRunner

from transferlab.backbones import load_backbone
from transferlab.classify import LinearOptions, fit, fit_probe, load_model, run_linear
from transferlab.classify.linear_model import LinearProbeModel
from transferlab.cli.main import app
from transferlab.errors import ConfigError, ModelFileError
from transferlab.pipeline import ExtractionOptions

runner = CliRunner()
FAST = dict(backbone="digits_cnn", weights="none", workers=0, progress=False)


@pytest.fixture(scope="module")
def digits_small(tmp_path_factory):
    from transferlab.data import write_digits_folder

    return write_digits_folder(tmp_path_factory.mktemp("d") / "digits", classes=[0, 1, 3, 7], per_class=40)


def test_run_end_to_end_numbers_agree_with_scikit_learn(digits_small, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(digits_small), "-b", "digits_cnn", "-w", "none", "--train-per-class",
                                 "10", "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output
    for name in ("metrics.json", "confusion_matrix.png", "confusion_matrix.csv", "config.json", "report.md",
                 "predictions.csv", "model/model.json", "model/tensors.safetensors", "log.txt"):
        assert (out / name).is_file(), name
    assert "images forwarded" in (out / "log.txt").read_text() and "test accuracy" in (out / "log.txt").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    with open(out / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    classes = metrics["classes"]
    y_true = [classes.index(r["true"]) for r in rows]
    y_pred = [classes.index(r["predicted"]) for r in rows]
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert metrics["confusion_matrix"] == confusion_matrix(y_true, y_pred).tolist()
    assert metrics["n_train"] == 40 and metrics["n_test"] == 120 and metrics["feature_size"] == 128
    assert metrics["chosen_C"] == 1.0 and metrics["C_mode"] == "fixed" and metrics["classifier"] == "svm"
    assert set(metrics["per_class"]) == {"0", "1", "3", "7"}
    assert {"extraction_seconds", "fit_seconds"} <= set(metrics)


def test_svm_C1_equals_a_plain_linearsvc(digits_small):
    options = ExtractionOptions(**{k: v for k, v in FAST.items()}, layers=["relu_fc2"], train_per_class=10,
                                use_cache=False)
    from transferlab.pipeline import features_for

    result = features_for(digits_small, options)
    feats = result.features["relu_fc2"]
    model, info = fit_probe(feats, result.backbone, "relu_fc2", options, LinearOptions("svm", 1.0))
    plain = LinearSVC(C=1.0).fit(feats.X_train, feats.y_train)
    np.testing.assert_array_equal(model.predict(feats.X_test), plain.predict(feats.X_test))
    np.testing.assert_allclose(model.classifier.coef_, plain.coef_, atol=1e-4)  # liblinear shuffles: ~1e-6


def test_C_auto_never_touches_the_test_split(digits_small, tmp_path):
    """Poisoning the whole test split (features and labels) leaves the chosen C and the CV curve unchanged."""
    from dataclasses import replace

    from transferlab.pipeline import features_for

    options = ExtractionOptions(**FAST, layers=["relu_fc2"], train_per_class=12, cache_dir=tmp_path / "c")
    result = features_for(digits_small, options)
    feats = result.features["relu_fc2"]
    rng = np.random.default_rng(0)
    poisoned = replace(feats, X_test=rng.normal(size=feats.X_test.shape).astype(np.float32),
                       y_test=rng.permutation(feats.y_test))
    linear = LinearOptions("svm", "auto")
    model_a, a = fit_probe(feats, result.backbone, "relu_fc2", options, linear)
    model_b, b = fit_probe(poisoned, result.backbone, "relu_fc2", options, linear)
    assert a["C"] == b["C"]
    strip = [{k: v for k, v in row.items() if k != "fit_seconds"} for row in a["cv_curve"]]
    assert strip == [{k: v for k, v in row.items() if k != "fit_seconds"} for row in b["cv_curve"]]
    assert len(strip) == 9 and strip[0]["C"] == pytest.approx(1e-4) and strip[0]["folds"] == 5
    np.testing.assert_array_equal(model_a.classifier.coef_, model_b.classifier.coef_)
    # and through the command: the CV curve is written and plotted
    metrics = run_linear(digits_small, tmp_path / "a", **FAST, train_per_class=12, C="auto", cache_dir=tmp_path / "c")
    assert metrics["chosen_C"] == a["C"] and metrics["C_mode"] == "cv-on-train"
    assert (tmp_path / "a" / "cv_curve.png").is_file()


@pytest.mark.parametrize("classifier, pca", [("svm", None), ("logreg", None), ("svm", 8)])
def test_save_load_predict_round_trip(digits_small, tmp_path, classifier, pca):
    model = fit(digits_small, **FAST, train_per_class=10, classifier=classifier, pca=pca, use_cache=False)
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded, LinearProbeModel) and loaded.classes == ["0", "1", "3", "7"]
    names = loaded.predict_paths([str(next((digits_small / "3").iterdir()))], use_cache=False)
    assert len(names) == 1 and names[0] in loaded.classes
    if classifier == "svm":
        with pytest.raises(ConfigError, match="decision values, not probabilities"):
            loaded.predict_proba(np.zeros((1, 128), np.float32))
    paths = sorted(str(p) for p in digits_small.rglob("*.png"))[::7]
    a, kept_a, _ = model.predict_scores(paths, use_cache=False)
    b, kept_b, _ = loaded.predict_scores(paths, use_cache=False)
    np.testing.assert_array_equal(a.argmax(1), b.argmax(1))  # identical predictions
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)  # float32 GEMM in PCA may differ in the last bit
    assert kept_a == kept_b
    # the torch version of the model gives the same scores (used by explanations)
    import torch

    from transferlab.data import image_transform, load_rgb

    x = torch.stack([image_transform(loaded.preprocessing)(load_rgb(p)) for p in paths])
    with torch.no_grad():
        torch_scores = loaded.as_torch_module()(x).numpy()
    decision = loaded.classifier.decision_function(loaded.features(paths, use_cache=False).features["relu_fc2"])
    np.testing.assert_allclose(torch_scores, decision, rtol=1e-4, atol=1e-4)


def test_model_with_file_weights_carries_them(digits_small, tmp_path):
    import torch

    weights = tmp_path / "w.pth"
    torch.save(load_backbone("digits_cnn", "none", seed=5).model.state_dict(), weights)
    model = fit(digits_small, backbone="digits_cnn", weights=str(weights), train_per_class=10, workers=0,
                progress=False, use_cache=False)
    model.save(tmp_path / "model")
    weights.unlink()  # the saved model does not depend on the original file
    loaded = load_model(tmp_path / "model")
    paths = sorted(str(p) for p in digits_small.rglob("*.png"))[:5]
    np.testing.assert_array_equal(model.predict_scores(paths, use_cache=False)[0],
                                  loaded.predict_scores(paths, use_cache=False)[0])


def test_tampered_or_foreign_model_files_fail_clearly_and_run_no_code(digits_small, tmp_path):
    model = fit(digits_small, **FAST, train_per_class=10, use_cache=False)
    folder = model.save(tmp_path / "model")
    with pytest.raises(ModelFileError, match="is not a transferlab model"):
        load_model(tmp_path)
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "format": "something-else"}))
    with pytest.raises(ModelFileError, match="format marker missing"):
        load_model(folder)
    (folder / "model.json").write_text(json.dumps({**meta, "classifier": "svm", "layer": "nope"}))
    with pytest.raises(Exception, match="unknown layer|not a valid"):
        load_model(folder).predict_scores([str(next(digits_small.rglob("*.png")))], use_cache=False)
    (folder / "model.json").write_text(json.dumps(meta))
    import pickle

    class Evil:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('ran')" % str(tmp_path / "pwned"),))

    (folder / "tensors.safetensors").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelFileError, match="cannot be read"):
        load_model(folder)
    assert not (tmp_path / "pwned").exists()
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(folder)


def test_predict_command(digits_small, tmp_path):
    model = fit(digits_small, **FAST, train_per_class=10, classifier="logreg", use_cache=False)
    model.save(tmp_path / "model")
    images = tmp_path / "images"
    images.mkdir()
    for p in sorted(digits_small.rglob("*.png"))[:3]:
        shutil.copy(p, images / p.name)
    (images / "broken.png").write_bytes(b"not an image")
    (images / "readme.txt").write_text("x")
    result = runner.invoke(app, ["predict", str(tmp_path / "model"), str(images), "--top-k", "2", "--json",
                                 "--no-cache"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert len(payload["predictions"]) == 3
    first = payload["predictions"][0]
    assert first["class"] == first["top_k"][0]["class"] and len(first["top_k"]) == 2
    assert first["top_k"][0]["score"] >= first["top_k"][1]["score"]
    assert 0.0 <= first["score"] <= 1.0  # logistic regression: probabilities
    assert {s["path"].split("/")[-1] for s in payload["skipped"]} == {"broken.png", "readme.txt"}
    table = runner.invoke(app, ["predict", str(tmp_path / "model"), str(images / "broken.png"), "--no-cache"])
    assert table.exit_code == 0 and "skipped" in table.output


def test_run_option_errors(digits_small, tmp_path):
    with pytest.raises(ConfigError, match="--C must be a positive number or 'auto'; got 'big'"):
        run_linear(digits_small, tmp_path / "x", **FAST, C="big")
    with pytest.raises(ConfigError, match="--C must be a positive finite number or 'auto'; got 'inf'"):
        run_linear(digits_small, tmp_path / "x", **FAST, C="inf")
    assert not (tmp_path / "x").exists()  # refused before any work, nothing left behind
    with pytest.raises(ConfigError, match="unknown classifier 'tree'"):
        run_linear(digits_small, tmp_path / "y", **FAST, classifier="tree", train_per_class=10, use_cache=False)
    with pytest.raises(ConfigError, match="--pca 500 is more than"):
        run_linear(digits_small, tmp_path / "z", **FAST, pca=500, train_per_class=10, use_cache=False)


def test_repeats_report_mean_and_std_from_the_cache(digits_small, tmp_path):
    metrics = run_linear(digits_small, tmp_path / "r", **FAST, train_per_class=10, repeats=3,
                         cache_dir=tmp_path / "c")
    r = metrics["repeats"]
    assert r["seeds"] == [0, 1, 2] and len(set(r["accuracies"])) > 1
    assert r["mean"] == pytest.approx(np.mean(r["accuracies"])) and r["accuracies"][0] == metrics["accuracy"]
    assert "seeded splits" in (tmp_path / "r" / "report.md").read_text()


def test_torch_module_of_a_saved_model_runs_the_real_network_up_to_its_layer(color_dir, tmp_path):
    """Explanations hook container modules (ResNet's layer4): they must fire, and later modules must not run."""
    import torch

    from transferlab.data import image_transform, load_rgb

    model = fit(color_dir, backbone="resnet18", weights="none", train_per_class=6, workers=0, progress=False,
                use_cache=False)
    loaded = load_model(model.save(tmp_path / "model"))
    module = loaded.as_torch_module()
    calls = {"layer4": 0, "fc": 0}
    hooks = [loaded.layer_module(name).register_forward_hook(
        lambda m, i, o, name=name: calls.__setitem__(name, calls[name] + 1)) for name in calls]
    paths = sorted(str(p) for p in color_dir.rglob("*.png"))[:4]
    x = torch.stack([image_transform(loaded.preprocessing)(load_rgb(p)) for p in paths])
    with torch.no_grad():
        scores = module(x).numpy()
    for hook in hooks:
        hook.remove()
    assert calls == {"layer4": 1, "fc": 0}
    decision = loaded.classifier.decision_function(loaded.features(paths, use_cache=False).features["pre_logits"])
    np.testing.assert_allclose(scores, decision, rtol=1e-4, atol=1e-4)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in loaded.backbone.model.modules())
