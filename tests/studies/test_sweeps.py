"""C, PCA, heads and backbones studies: end to end, equal to `transferlab run`, no test split in choices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import transferlab.studies.probe as probe
from transferlab.classify import LinearOptions, choose_C, run_linear
from transferlab.errors import ConfigError
from transferlab.pipeline import features_for
from transferlab.studies import BackbonesStudy, CStudy, HeadsStudy, PCAStudy, run_study

GRID = (1e-3, 1e-1, 1.0, 10.0, 1e3)


def _run_accuracy(data, options, linear, out, **changes):
    np.random.seed(options.seed)
    return run_linear(data, out, replace(options, layers=["relu_fc2"], pooling="none"), replace(linear, **changes))


def test_C_study_matches_choose_C_and_run(tiny_digits, make_options, tmp_path):
    options, linear = make_options(), LinearOptions(cv_folds=3, c_grid=GRID)
    result = run_study(CStudy(tiny_digits, options, linear), tmp_path / "out", progress=False)
    assert (result.out / "C_sweep.png").stat().st_size > 0 and (result.out / "C_test.md").exists()
    feats = features_for(tiny_digits, replace(options, layers=["relu_fc2"], pooling="none")).features["relu_fc2"]
    best, curve = choose_C("svm", feats.X_train, feats.y_train, GRID, 3, None, 0)
    assert [r["C"] for r in result.rows] == list(GRID)
    assert [r["cv_acc"] for r in result.rows] == [c["cv_mean"] for c in curve]
    assert [r["cv_std"] for r in result.rows] == [c["cv_std"] for c in curve]
    assert result.summary["chosen_C"] == best
    chosen = _run_accuracy(tiny_digits, options, linear, tmp_path / "run-chosen", C=best)
    default = _run_accuracy(tiny_digits, options, linear, tmp_path / "run-1", C=1.0)
    assert result.summary["test_acc_chosen_C"] == chosen["accuracy"]
    assert result.summary["test_acc_C1"] == default["accuracy"]


def test_C_choice_ignores_poisoned_test_labels(tiny_digits, make_options, tmp_path, monkeypatch):
    options, linear = make_options(), LinearOptions(cv_folds=3, c_grid=GRID)
    clean = run_study(CStudy(tiny_digits, options, linear), tmp_path / "clean", progress=False)

    def poisoned(data, opts, backbone=None, seed=None):  # every test label shifted to another class
        result = features_for(data, opts, backbone=backbone, seed=seed)
        for feats in result.features.values():
            feats.y_test = (feats.y_test + 1) % len(feats.classes)
        return result

    monkeypatch.setattr(probe, "features_for", poisoned)
    dirty = run_study(CStudy(tiny_digits, options, linear), tmp_path / "dirty", progress=False)
    assert dirty.summary["chosen_C"] == clean.summary["chosen_C"]
    for a, b in zip(clean.rows, dirty.rows):
        assert (a["C"], a["cv_acc"], a["cv_std"], a["folds"]) == (b["C"], b["cv_acc"], b["cv_std"], b["folds"])
    assert dirty.summary["test_acc_C1"] != clean.summary["test_acc_C1"]  # the poison did reach the test split


def test_pca_study(tiny_digits, make_options, linear, tmp_path):
    options = make_options()
    result = run_study(PCAStudy(tiny_digits, options, linear), tmp_path / "out", progress=False)
    assert (result.out / "pca.png").stat().st_size > 0
    assert [r["pca"] for r in result.rows] == [2, 4, 8, 16, None]  # powers of 2 below 24 training rows
    kept = [r["variance_kept"] for r in result.rows]
    assert kept == sorted(kept) and kept[-1] == 1.0 and 0 < kept[0] < 1
    assert result.rows[-1]["cv_acc"] is not None and result.rows[3]["cv_acc"] is not None  # 16 <= 24 - 8
    for row in (result.rows[1], result.rows[-1]):
        assert row["test_acc"] == _run_accuracy(tiny_digits, options, linear, tmp_path / f"run{row['pca']}",
                                                pca=row["pca"])["accuracy"]
    with pytest.raises(ConfigError, match="exceed min"):
        run_study(PCAStudy(tiny_digits, options, linear, dims=[4, 500]), tmp_path / "bad", progress=False)


def test_heads_study(tiny_digits, make_options, linear, tmp_path):
    options = make_options()
    study = HeadsStudy(tiny_digits, options, linear, hidden=(32,))
    result = run_study(study, tmp_path / "out", progress=False)
    assert (result.out / "heads.png").stat().st_size > 0
    rows = {r["head"]: r for r in result.rows}
    assert list(rows) == ["svm", "logreg", "mlp"]
    for head in ("svm", "logreg"):
        metrics = _run_accuracy(tiny_digits, options, linear, tmp_path / f"run-{head}", classifier=head)
        assert rows[head]["test_acc"] == metrics["accuracy"]
    again = run_study(HeadsStudy(tiny_digits, options, linear, heads=["mlp"], hidden=(32,)), tmp_path / "again",
                      progress=False)
    assert (again.rows[0]["test_acc"], again.rows[0]["cv_acc"]) == (rows["mlp"]["test_acc"], rows["mlp"]["cv_acc"])
    # measured on this 4-class set: the seeded MLP reaches 0.9583 test accuracy; chance is 0.25
    assert rows["mlp"]["test_acc"] > 0.5
    with pytest.raises(ConfigError, match="unknown head 'mpl'.*mlp"):
        HeadsStudy(tiny_digits, options, linear, heads=["mpl"])


def test_backbones_study_each_with_its_preprocessing(color_dir, make_options, linear, tmp_path):
    options = make_options(train_per_class=6)
    study = BackbonesStudy(color_dir, options, linear, backbones=["digits_cnn", "alexnet"])
    result = run_study(study, tmp_path / "out", progress=False)
    assert (result.out / "backbones.png").stat().st_size > 0
    rows = {r["backbone"]: r for r in result.rows}
    assert (rows["digits_cnn"]["input_size"], rows["digits_cnn"]["feature_size"]) == (32, 128)
    assert (rows["alexnet"]["input_size"], rows["alexnet"]["feature_size"], rows["alexnet"]["layer"]) == \
        (224, 4096, "relu7")
    for name, row in rows.items():
        np.random.seed(0)
        metrics = run_linear(color_dir, tmp_path / f"run-{name}", replace(options, backbone=name, layers=[],
                                                                          pooling="none"), linear)
        assert row["test_acc"] == metrics["accuracy"]
        assert row["images_forwarded"] in (0, 36) and row["fit_s"] >= 0
    with pytest.raises(ConfigError, match="alexnett"):
        BackbonesStudy(color_dir, options, linear, backbones=["alexnett"])
