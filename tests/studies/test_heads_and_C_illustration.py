"""Per-C test accuracy shown for illustration (seed 000 Fig. 4, seed 002's SVM-over-C vs MLP bars), never
used to choose C; the MLP head's hyperparameters in `study heads`."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from transferlab.classify import LinearOptions, run_linear
from transferlab.classify.run import ILLUSTRATION_KEY
from transferlab.studies import CStudy, HeadsStudy, run_study

GRID = (1e-3, 1.0, 1e3)


def _accuracy(data, options, _, C):
    """Test accuracy of LinearSVC(C) fitted on the training rows, as `run` fits it (tests/studies/test_sweeps.py
    checks that `run` and the studies agree)."""
    from transferlab.classify.probe import fit_classifier, make_classifier
    from transferlab.pipeline import features_for

    feats = features_for(data, replace(options, layers=["relu_fc2"], pooling="none")).features["relu_fc2"]
    model, _ = fit_classifier(make_classifier("svm", C, None, options.seed), feats.X_train, feats.y_train)
    return float(np.mean(model.predict(feats.X_test) == feats.y_test))


def test_C_study_rows_carry_the_test_accuracy_of_each_C(tiny_digits, make_options, tmp_path):
    options = make_options()
    result = run_study(CStudy(tiny_digits, options, LinearOptions(cv_folds=3, c_grid=GRID)), tmp_path / "out",
                       progress=False)
    for row in result.rows:
        assert row[ILLUSTRATION_KEY] == _accuracy(tiny_digits, options, None, row["C"])
    assert len({r[ILLUSTRATION_KEY] for r in result.rows}) > 1  # C matters on this set: the values differ
    best_cv = max(result.rows, key=lambda r: (r["cv_acc"], -r["C"]))["C"]
    assert result.summary["chosen_C"] == best_cv  # chosen by CV, whatever the test column says
    assert ILLUSTRATION_KEY in (result.out / "C.md").read_text()


def test_run_C_auto_records_the_test_accuracy_per_C_beside_the_cv_curve(tiny_digits, make_options, tmp_path):
    options = replace(make_options(), layers=["relu_fc2"], pooling="none")
    np.random.seed(0)
    metrics = run_linear(tiny_digits, tmp_path / "auto", options, LinearOptions(C="auto", cv_folds=3, c_grid=GRID))
    saved = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    curve = {row["C"]: row for row in saved["cv_curve"]}
    assert set(curve) == set(GRID) and all(ILLUSTRATION_KEY in row for row in curve.values())
    assert curve[metrics["chosen_C"]][ILLUSTRATION_KEY] == metrics["accuracy"]
    assert (tmp_path / "auto" / "cv_curve.png").stat().st_size > 0


def test_heads_study_svm_over_C_bars_and_mlp_hyperparameters(tiny_digits, make_options, linear, tmp_path):
    options = make_options()
    study = HeadsStudy(tiny_digits, options, linear, heads=["mlp"], hidden=(16, 8), alpha=1e-3, max_iter=40,
                       learning_rate=1e-2, svm_grid=(1e-3, 1e3))
    result = run_study(study, tmp_path / "out", progress=False)
    rows = {r["head"]: r for r in result.rows}
    assert list(rows) == ["mlp", "svm C=0.001", "svm C=1000"]
    assert rows["svm C=0.001"]["test_acc"] == _accuracy(tiny_digits, options, None, 1e-3)
    assert rows["svm C=1000"]["test_acc"] == _accuracy(tiny_digits, options, None, 1e3)
    assert rows["mlp"]["params"] == "hidden=[16, 8] alpha=0.001 lr=0.01" and 1 <= rows["mlp"]["epochs"] <= 40
    assert result.summary["best_head_by_cv"] == max(result.rows, key=lambda r: r["cv_acc"])["head"]
    assert (result.out / "heads.png").stat().st_size > 0


def test_study_heads_cli_takes_the_mlp_options_and_the_svm_grid(tiny_digits, shared_cache, tmp_path, capsys):
    from transferlab.cli.main import main

    args = ["study", "heads", str(tiny_digits), "--backbone", "digits_cnn", "--weights", "none", "--heads", "mlp",
            "--hidden", "8", "--alpha", "0.01", "--epochs", "20", "--lr", "0.01", "--svm-grid", "0.1,10",
            "--train-per-class", "6", "--cv-folds", "3", "--cache-dir", str(shared_cache), "--out",
            str(tmp_path / "cli"), "--quiet", "--device", "cpu"]
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    assert not code, capsys.readouterr().err
    table = (tmp_path / "cli" / "heads.md").read_text()
    assert "svm C=0.1" in table and "svm C=10" in table and "hidden=[8] alpha=0.01" in table
