"""The torch solver of LinearSVC's and LogisticRegression's objectives (``--solver torch``), in and out of core."""

from __future__ import annotations

import json
import warnings

import logging

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from transferlab.classify.probe import TORCH_FROM_ELEMENTS, choose_C, make_classifier, resolve_solver
from transferlab.classify.torch_linear import TorchLinearClassifier, _Objective, is_memory_mapped
from transferlab.errors import ConfigError


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits, L2-normalised like transferlab's features: 1,797 x 64, 10 classes."""
    X, y = load_digits(return_X_y=True)
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y


def sklearn_objective(loss: str, C: float, coef, intercept, X, y) -> float:
    """scikit-learn's objective at scikit-learn's solution, computed by the same formula."""
    classes, index = np.unique(y, return_inverse=True)
    objective = _Objective(loss, C, len(classes), True, 1.0, float(len(y)))
    W = torch.tensor(coef, dtype=torch.float32)
    b = torch.tensor(np.asarray(intercept) / objective.scale, dtype=torch.float32)
    return float(objective.total(W, b, X, index, np.ones(len(y), np.float32), "cpu"))


@pytest.mark.parametrize("C", [0.1, 1.0])
def test_squared_hinge_matches_linear_svc(digits, C):
    X, y = digits
    reference = LinearSVC(C=C, max_iter=10_000).fit(X, y)
    model = TorchLinearClassifier("squared_hinge", C, device="cpu").fit(X, y)
    assert model.method_ == "lbfgs"
    assert np.mean(model.predict(X) == reference.predict(X)) >= 0.98
    expected = sklearn_objective("squared_hinge", C, reference.coef_, reference.intercept_, X, y)
    assert model.objective_ == pytest.approx(expected, rel=1e-4)  # the same minimum (liblinear's tol)
    assert model.coef_.shape == reference.coef_.shape and model.intercept_.shape == reference.intercept_.shape
    np.testing.assert_allclose(model.decision_function(X), reference.decision_function(X), atol=0.02)


def test_log_loss_matches_logistic_regression(digits):
    X, y = digits[0][:600], digits[1][:600]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = LogisticRegression(C=1.0, max_iter=5000).fit(X, y)
    model = TorchLinearClassifier("log_loss", 1.0, device="cpu").fit(X, y)
    assert np.mean(model.predict(X) == reference.predict(X)) >= 0.98
    expected = sklearn_objective("log_loss", 1.0, reference.coef_, reference.intercept_, X, y)
    assert model.objective_ <= expected * (1 + 1e-4)  # at least as low as lbfgs's own minimum
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(X), atol=0.01)
    assert not hasattr(TorchLinearClassifier("squared_hinge"), "predict_proba")  # an SVM has no probabilities


def test_two_classes_one_row_like_scikit_learn(digits):
    X, y = digits
    rows = np.isin(y, [3, 8])
    X2, y2 = X[rows], np.where(y[rows] == 3, "three", "eight")
    reference = LinearSVC(C=1.0, max_iter=10_000).fit(X2, y2)
    model = TorchLinearClassifier("squared_hinge", 1.0, device="cpu").fit(X2, y2)
    assert model.coef_.shape == (1, 64) and list(model.classes_) == ["eight", "three"]
    assert np.mean(model.predict(X2) == reference.predict(X2)) >= 0.98
    logistic = TorchLinearClassifier("log_loss", 1.0, device="cpu").fit(X2, y2)
    np.testing.assert_allclose(logistic.predict_proba(X2).sum(axis=1), 1.0, rtol=1e-6)


def test_out_of_core_on_a_memory_map_gives_the_same_model(digits, tmp_path):
    """Minibatch warm start + L-BFGS on gradients summed over blocks of a np.memmap: the full objective's
    solution, never holding the features whole."""
    X, y = digits
    path = tmp_path / "features.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    assert is_memory_mapped(mapped) and is_memory_mapped(mapped[10:]) and not is_memory_mapped(X)
    in_memory = TorchLinearClassifier("squared_hinge", 1.0, device="cpu").fit(X, y)
    streamed = TorchLinearClassifier("squared_hinge", 1.0, method="minibatch", batch_size=256, block_rows=400,
                                     device="cpu").fit(mapped, y)
    assert streamed.method_ == "minibatch"
    assert np.mean(streamed.predict(mapped) == in_memory.predict(X)) >= 0.98
    assert streamed.objective_ == pytest.approx(in_memory.objective_, rel=1e-3)
    # auto: a memory map larger than the device's memory budget goes out of core
    assert TorchLinearClassifier(memory_fraction=1e-12).chosen_method(mapped) == "minibatch"
    assert TorchLinearClassifier().chosen_method(X) == "lbfgs"


def test_scikit_learn_estimator_contract(digits):
    X, y = digits
    estimator = TorchLinearClassifier("squared_hinge", 0.5, device="cpu")
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params() and not hasattr(copy, "coef_")
    pipe = Pipeline([("pca", PCA(16, random_state=0)), ("classifier", estimator)]).fit(X[:600], y[:600])
    assert pipe.score(X[600:], y[600:]) > 0.85
    search = GridSearchCV(estimator, {"C": [0.1, 1.0]}, cv=3).fit(X[:600], y[:600])
    assert search.best_params_["C"] in (0.1, 1.0) and search.best_estimator_.coef_.shape == (10, 64)
    with pytest.raises(ConfigError, match="loss must be one of"):
        TorchLinearClassifier("hinge").fit(X, y)


def test_auto_solver_by_size_and_memory_map(digits, tmp_path, caplog):
    X, y = digits
    assert resolve_solver("auto", X) == "liblinear"  # 115,008 values: below the measured threshold
    big = np.zeros((TORCH_FROM_ELEMENTS // 64 + 1, 64), np.float32)
    assert resolve_solver("auto", big) == "torch"
    np.save(tmp_path / "f.npy", X)
    assert resolve_solver("auto", np.load(tmp_path / "f.npy", mmap_mode="r")) == "torch"
    assert resolve_solver("liblinear", big) == "liblinear"
    with caplog.at_level(logging.WARNING, logger="transferlab"):  # asked for, but it copies the map into RAM
        assert resolve_solver("liblinear", np.load(tmp_path / "f.npy", mmap_mode="r")) == "liblinear"
    assert "--solver liblinear copies the memory-mapped features into RAM" in caplog.text
    assert isinstance(make_classifier("logreg", 1.0, solver="torch"), TorchLinearClassifier)
    assert isinstance(make_classifier("svm", 1.0, solver="auto", X=X), LinearSVC)
    with pytest.raises(ConfigError, match="unknown --solver 'sgd'; expected one of auto, liblinear, torch"):
        resolve_solver("sgd", X)


def test_cv_on_a_memory_map_uses_the_same_folds_without_copying(digits, tmp_path):
    """choose_C on features left on disk: folds as sample weights, the same curve as GridSearchCV's."""
    X, y = digits
    X, y = X[:500], y[:500]
    np.save(tmp_path / "f.npy", X)
    mapped = np.load(tmp_path / "f.npy", mmap_mode="r")
    best_mem, curve_mem = choose_C("svm", X, y, (0.01, 1.0), folds=3, solver="torch", device="cpu")
    best_map, curve_map = choose_C("svm", mapped, y, (0.01, 1.0), folds=3, solver="torch", device="cpu")
    assert best_map == best_mem
    for a, b in zip(curve_mem, curve_map):
        assert b["cv_mean"] == pytest.approx(a["cv_mean"], abs=0.01) and b["folds"] == 3
    json.dumps(curve_map)  # plain numbers (metrics.json)


def test_max_feature_gb_keeps_features_on_disk_end_to_end(tmp_path):
    """`run --max-feature-gb` tiny: the features stay memory-mapped from the cache, the torch solver fits them
    out of core, and the run's accuracy, predictions and saved model equal those of the in-memory run."""
    from typer.testing import CliRunner

    from transferlab.classify import load_model
    from transferlab.cli import options
    from transferlab.cli.main import app
    from transferlab.data import write_digits_folder
    from transferlab.features.extract import DEFAULT_MAX_FEATURE_GB
    from transferlab.pipeline import ExtractionOptions, features_for

    assert options.DEFAULT_MAX_FEATURE_GB == DEFAULT_MAX_FEATURE_GB
    data = write_digits_folder(tmp_path / "digits", classes=[0, 1, 3, 7], per_class=30)
    common = ["-b", "digits_cnn", "-w", "none", "--train-per-class", "15", "--cache-dir", str(tmp_path / "c"),
              "--workers", "0", "--solver", "torch", "--device", "cpu"]
    runner = CliRunner()
    results = {}
    for name, extra in (("memory", []), ("disk", ["--max-feature-gb", "0.00001"])):
        out = tmp_path / name
        result = runner.invoke(app, ["run", str(data), *common, *extra, "--out", str(out)])
        assert result.exit_code == 0, result.output
        results[name] = json.loads((out / "metrics.json").read_text())
        assert results[name]["solver"] == "torch"
    assert (results["memory"]["solver_method"], results["disk"]["solver_method"]) == ("lbfgs", "minibatch")
    assert results["disk"]["accuracy"] == results["memory"]["accuracy"]
    assert results["disk"]["confusion_matrix"] == results["memory"]["confusion_matrix"]
    assert "kept on disk, memory-mapped" in (tmp_path / "disk" / "log.txt").read_text()
    saved = load_model(tmp_path / "disk" / "model")  # the one linear-model format: coef + intercept
    assert saved.classifier.coef_.shape == (4, 128)  # relu_fc2

    options_ = ExtractionOptions(backbone="digits_cnn", weights="none", workers=0, progress=False,
                                 train_per_class=15, cache_dir=tmp_path / "c", max_feature_gb=1e-5)
    feats = next(iter(features_for(data, options_).features.values()))
    assert is_memory_mapped(feats.X_train) and is_memory_mapped(feats.X_test)
    in_memory = next(iter(features_for(data, ExtractionOptions(
        **{**options_.__dict__, "max_feature_gb": 8.0})).features.values()))
    assert not is_memory_mapped(in_memory.X_train)
    np.testing.assert_array_equal(np.asarray(feats.X_train), in_memory.X_train)
    np.testing.assert_array_equal(np.asarray(feats.X_test), in_memory.X_test)
    np.testing.assert_allclose(saved.predict(feats.X_test), saved.predict(in_memory.X_test))

    with pytest.raises(ConfigError, match=r"more than --max-feature-gb 1e-05 holds in memory with --no-cache; "
                                          r"use --pooling avg\|max\|spp, raise --max-feature-gb, or drop --no-cache"):
        features_for(data, ExtractionOptions(**{**options_.__dict__, "use_cache": False}))


def test_features_beyond_the_free_disk_are_refused_before_any_work(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from transferlab.backbones import load_backbone
    from transferlab.data import write_digits_folder
    from transferlab.features import extract_features

    data = write_digits_folder(tmp_path / "digits", classes=[0, 1], per_class=3)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))  # 1 kB free
    with pytest.raises(ConfigError, match=r"more than the 0\.0 GB free in the feature cache .*; use --pooling "
                                          r"avg\|max\|spp or a --cache-dir with room"):
        extract_features(sorted(data.rglob("*.png")), load_backbone("digits_cnn", "none"), ["relu_fc2"],
                         cache_dir=tmp_path / "c", max_feature_gb=1e-9, workers=0, progress=False)


def test_C_study_with_the_torch_solver_on_memory_mapped_features(tmp_path):
    """`study C --solver torch --max-feature-gb tiny`: the CV curve over zero-weighted folds of the memory map
    agrees with liblinear's GridSearchCV curve on the same folds."""
    from dataclasses import replace

    from transferlab.classify import LinearOptions
    from transferlab.data import write_digits_folder
    from transferlab.pipeline import ExtractionOptions
    from transferlab.studies.c_sweep import CStudy
    from transferlab.studies.runner import run_study

    data = write_digits_folder(tmp_path / "digits", classes=[0, 1, 2, 3], per_class=12)
    options = ExtractionOptions(backbone="digits_cnn", weights="none", train_per_class=6, pooling="avg", workers=0,
                                cache_dir=tmp_path / "c", progress=False, device="cpu")
    linear = LinearOptions(cv_folds=3, c_grid=(0.1, 10.0))
    rows = {}
    for solver, extraction in (("liblinear", options), ("torch", replace(options, max_feature_gb=1e-9))):
        result = run_study(CStudy(data, extraction, replace(linear, solver=solver)), tmp_path / solver,
                           progress=False)
        rows[solver] = {row["C"]: row["cv_acc"] for row in result.rows}
    assert rows["torch"].keys() == rows["liblinear"].keys() == {0.1, 10.0}
    for C, accuracy in rows["liblinear"].items():
        assert rows["torch"][C] == pytest.approx(accuracy, abs=0.09)  # one image in a fold of 8 at most


def test_run_refuses_a_grayscale_surgery_its_saved_model_could_not_rebuild(tmp_path):
    from transferlab.classify import run_linear
    from transferlab.data import write_digits_folder

    data = write_digits_folder(tmp_path / "d", classes=[0, 1], per_class=4)
    with pytest.raises(ConfigError, match="run saves a linear model on the RGB network, so --grayscale must be "
                                          "duplicate; got 'sum-filters'"):
        run_linear(data, tmp_path / "out", backbone="digits_cnn", weights="none", grayscale="sum-filters")
    assert not (tmp_path / "out").exists()


def test_a_config_from_before_solver_reruns_with_liblinear(tmp_path, monkeypatch):
    """rerun of a config.json without 'solver' (written before the option) fits as it did then: liblinear."""
    import transferlab.classify.run as run_module

    seen = {}

    def stop(feats, backbone, layer, extraction, linear):
        seen["solver"] = linear.solver
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "fit_probe", stop)
    from transferlab.data import write_digits_folder

    data = write_digits_folder(tmp_path / "d", classes=[0, 1], per_class=4)
    extraction = {"backbone": "digits_cnn", "weights": "none", "train_per_class": 2, "workers": 0,
                  "use_cache": False, "progress": False}
    with pytest.raises(KeyboardInterrupt):
        run_module.run_linear(data, tmp_path / "old", extraction, {"C": 1.0})
    assert seen["solver"] == "liblinear"
