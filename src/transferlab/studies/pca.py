"""``transferlab study pca``: PCA before the SVM, swept over the number of components.

The assignment's "going further" list names dimensionality reduction; this measures what it costs
and saves: test and CV accuracy, fit time (PCA + SVM) and predict time (projection + SVM) per size,
plus the variance kept. PCA is fitted on the training rows only, inside each CV fold too.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..classify import LinearOptions
from ..classify.probe import cv_folds
from ..errors import ConfigError
from ..pipeline import ExtractionOptions
from .base import ProbeStudy, best_by_cv
from .figures import plot_sweep
from .probe import drop_private, probe_metrics
from .runner import Condition


class PCAStudy(ProbeStudy):
    name = "pca"

    def __init__(self, data: Path | str, extraction: ExtractionOptions, linear: LinearOptions | None = None,
                 dims: list[int] | None = None, cv: bool = True) -> None:
        super().__init__(data, extraction, linear, cv)
        if dims is not None and any(d < 1 for d in dims):
            raise ConfigError(f"--dims must be positive numbers of components; got {dims}")
        self.dims = sorted(set(dims)) if dims else None

    def study_config(self) -> dict[str, Any]:
        return {"dims": self.dims}

    def _limits(self) -> tuple[int, int]:
        """(largest PCA size for the full fit, largest for every CV fold's training part)."""
        _, layer, _, result = self.default_features()
        feats = result.features[layer]
        n, d = feats.X_train.shape
        k = cv_folds(feats.y_train, self.linear.cv_folds)
        return min(n, d), min(n - -(-n // k), d)  # the biggest fold is held out: ceil(n / k)

    def conditions(self) -> list[Condition]:
        full, _ = self._limits()
        dims = self.dims or [2 ** i for i in range(1, 31) if 2 ** i < full]
        too_big = [d for d in dims if d > full]
        if too_big:
            raise ConfigError(f"--dims {too_big} exceed min(training images, feature size) = {full}; "
                              "PCA cannot keep more components than that")
        return [Condition(f"pca={d}", {"pca": d}) for d in dims] + [Condition("pca=none", {"pca": None})]

    def evaluate(self, condition: Condition) -> dict[str, Any]:
        backbone, layer, options, result = self.default_features()
        dim = condition.params["pca"]
        _, cv_limit = self._limits()
        cv = self.cv and (dim is None or dim <= cv_limit)  # a fold too small for dim PCA components: no CV
        metrics = probe_metrics(result.features[layer], backbone, layer, options, replace(self.linear, pca=dim), cv=cv)
        classifier = metrics["_model"].classifier
        kept = float(classifier.named_steps["pca"].explained_variance_ratio_.sum()) if dim else 1.0
        return {"layer": layer, "variance_kept": round(kept, 5), "features_in": result.features[layer].X_train.shape[1],
                **drop_private(metrics)}

    def figures(self, rows: list[dict[str, Any]], out: Path) -> list[Path]:
        sized = [{**r, "pca": r["pca"] or r["features_in"]} for r in rows]
        return [plot_sweep(sized, "pca", out / "pca.png", "PCA components before the SVM (last point: no PCA)",
                           "components")]

    def summary(self, rows: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        best = best_by_cv(rows)
        return {"best_pca_by_cv": best["pca"] if best else None, "best_test_acc": best["test_acc"] if best else None}
