"""``transferlab study heads``: linear SVM vs logistic regression vs a small MLP on the same features.

Report 002 (question 11, "SVM and MLP comparison") found both heads at about 91 % once tuned. The SVM
and logistic regression are fitted exactly as ``transferlab run --classifier svm|logreg`` fits them;
the MLP is scikit-learn's ``MLPClassifier`` (hidden ReLU layers, Adam, seeded), fitted on the
training rows only. CV accuracy uses the same stratified, seeded folds of the training split.
``svm_grid`` adds one LinearSVC bar per C (``svm C=0.01`` ...), report 002's SVM-over-C bars beside the MLP;
their test accuracy is shown for illustration only, the best head is chosen by CV on the training split.
The MLP's width(s), L2 penalty ``alpha``, epochs (``max_iter``) and learning rate are options.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier

from ..classify import CLASSIFIERS, LinearOptions
from ..classify.probe import cv_folds, fit_classifier
from ..errors import ConfigError, did_you_mean
from ..pipeline import ExtractionOptions
from .base import ProbeStudy, best_by_cv
from .figures import plot_bars
from .probe import accuracy, drop_private, probe_metrics, shape_metrics
from .runner import Condition

HEADS = (*CLASSIFIERS, "mlp")


class HeadsStudy(ProbeStudy):
    name = "heads"

    def __init__(self, data: Path | str, extraction: ExtractionOptions, linear: LinearOptions | None = None,
                 heads: list[str] | None = None, hidden: tuple[int, ...] = (256,), alpha: float = 1e-4,
                 max_iter: int = 300, learning_rate: float = 1e-2, cv: bool = True,
                 svm_grid: tuple[float, ...] = ()) -> None:
        super().__init__(data, extraction, linear, cv)
        self.heads = list(heads or HEADS)
        for head in self.heads:
            if head not in HEADS:
                raise ConfigError(f"unknown head {head!r}; expected some of {', '.join(HEADS)}."
                                  f"{did_you_mean(head, HEADS)}")
        if not hidden or any(h < 1 for h in hidden):
            raise ConfigError(f"--hidden must list positive layer widths; got {hidden}")
        if not learning_rate > 0 or not max_iter >= 1 or not alpha >= 0:
            raise ConfigError(f"MLP settings must be positive (learning rate {learning_rate}, epochs {max_iter}) "
                              f"and alpha non-negative ({alpha})")
        self.hidden, self.alpha, self.max_iter, self.learning_rate = tuple(hidden), alpha, max_iter, learning_rate
        self.svm_grid = tuple(float(c) for c in svm_grid or ())
        if any(not (c > 0 and c < float("inf")) for c in self.svm_grid):
            raise ConfigError(f"--svm-grid must list positive values of C; got {list(self.svm_grid)}")

    def study_config(self) -> dict[str, Any]:
        grid = {"svm_grid": list(self.svm_grid)} if self.svm_grid else {}  # absent: older studies resume
        return {"heads": self.heads, **grid, "mlp": {"hidden": list(self.hidden), "alpha": self.alpha,
                                                     "max_iter": self.max_iter, "learning_rate": self.learning_rate}}

    def conditions(self) -> list[Condition]:
        cells = [Condition(head, {"head": head}) for head in self.heads]
        return cells + [Condition(f"svm C={c:g}", {"head": f"svm C={c:g}"}) for c in self.svm_grid]

    def make_mlp(self) -> MLPClassifier:
        # Adam at 1e-2: at scikit-learn's default 1e-3 the updates on L2-normalised features (entries
        # ~1/sqrt(D)) are so small that the loss plateaus and training stops at chance (measured on digits).
        return MLPClassifier(hidden_layer_sizes=self.hidden, alpha=self.alpha, max_iter=self.max_iter,
                             learning_rate_init=self.learning_rate, random_state=self.seed)

    def evaluate(self, condition: Condition) -> dict[str, Any]:
        backbone, layer, options, result = self.default_features()
        feats, head = result.features[layer], condition.params["head"]
        if head.startswith("svm C="):  # one bar of the SVM-over-C sweep (report 002)
            C = float(head.partition("=")[2])
            metrics = probe_metrics(feats, backbone, layer, options, replace(self.linear, classifier="svm", C=C),
                                    cv=self.cv)
            return {"layer": layer, "params": f"C={C:g}", **drop_private(metrics)}
        if head != "mlp":
            metrics = probe_metrics(feats, backbone, layer, options, replace(self.linear, classifier=head), cv=self.cv)
            return {"layer": layer, "params": f"C={metrics['C']:g}", **drop_private(metrics)}
        cv_mean = cv_std = None
        if self.cv:
            folds = StratifiedKFold(cv_folds(feats.y_train, self.linear.cv_folds), shuffle=True,
                                    random_state=self.seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                scores = cross_val_score(self.make_mlp(), feats.X_train, feats.y_train, cv=folds, scoring="accuracy")
            cv_mean, cv_std = float(scores.mean()), float(scores.std())
        model, fit_seconds = fit_classifier(self.make_mlp(), feats.X_train, feats.y_train)
        start = time.perf_counter()
        y_pred = model.predict(feats.X_test)
        predict_seconds = time.perf_counter() - start
        return {"layer": layer, "params": f"hidden={list(self.hidden)} alpha={self.alpha:g} lr={self.learning_rate:g}",
                "test_acc": accuracy(feats.y_test, y_pred), "cv_acc": cv_mean, "cv_std": cv_std, "C": None,
                **shape_metrics(feats), "fit_s": round(fit_seconds, 5), "predict_s": round(predict_seconds, 5),
                "epochs": int(model.n_iter_)}

    def figures(self, rows: list[dict[str, Any]], out: Path) -> list[Path]:
        test_label = ("test accuracy (illustration only, not used to choose C)" if self.svm_grid
                      else "test accuracy")
        return [plot_bars(rows, "head", out / "heads.png", "heads on the same features", second="fit_s",
                          second_label="fit time (s)", test_label=test_label)]

    def summary(self, rows: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        best = best_by_cv(rows)
        return {"best_head_by_cv": best["head"] if best else None, "best_test_acc": best["test_acc"] if best else None}
