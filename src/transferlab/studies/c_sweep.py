"""``transferlab study C``: the SVM's C by k-fold CV on the training split (report 001, Figure 1.8).

One condition per C: mean ± std CV accuracy and mean fit time over the folds, computed by
:func:`transferlab.classify.choose_C` on the training rows only (the same stratified, seeded folds
for every C). The choice — the best mean CV accuracy, ties to the smaller C — is then scored once on
the test split, next to the assignment's C=1 (``C_test.csv``). Test labels never reach the choice.

Each row also carries ``test_acc_illustration_only``: the test accuracy at that C, as seed 000's Figure 4 and
seed 002's SVM-over-C bars plot it, shown in the table and as a dotted line in the figure labelled "test
accuracy (illustration only, not used to choose C)"; :meth:`CStudy.chosen_C` never reads it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..classify import LinearOptions, choose_C
from ..classify.probe import resolve_solver
from ..classify.run import ILLUSTRATION_KEY, add_test_accuracy_per_C, plot_cv_curve
from ..errors import ConfigError
from ..pipeline import ExtractionOptions
from ..report import write_table
from .base import ProbeStudy
from .probe import drop_private, probe_metrics
from .runner import Condition


class CStudy(ProbeStudy):
    name = "C"

    def __init__(self, data: Path | str, extraction: ExtractionOptions, linear: LinearOptions | None = None) -> None:
        super().__init__(data, extraction, linear, cv=True)
        grid = [float(c) for c in self.linear.c_grid]
        if not grid or any(not c > 0 for c in grid):
            raise ConfigError(f"--grid must list positive values of C; got {grid}")
        self.grid = sorted(set(grid))

    def study_config(self) -> dict[str, Any]:
        return {"grid": self.grid}

    def conditions(self) -> list[Condition]:
        return [Condition(f"C={c:g}", {"C": c}) for c in self.grid]

    def evaluate(self, condition: Condition) -> dict[str, Any]:
        _, layer, _, result = self.default_features()
        feats = result.features[layer]
        # X_train / y_train only: the test rows are not even passed.
        solver = resolve_solver(self.linear.solver, feats.X_train)
        _, curve = choose_C(self.linear.classifier, feats.X_train, feats.y_train, (condition.params["C"],),
                            self.linear.cv_folds, self.linear.pca, self.seed, solver, self.extraction.device,
                            self.extraction.max_feature_gb)
        row = curve[0]
        add_test_accuracy_per_C(curve, self.linear.classifier, feats, self.linear.pca, self.seed, solver,
                                self.extraction.device, self.extraction.max_feature_gb)  # after the CV
        return {"layer": layer, "cv_acc": row["cv_mean"], "cv_std": row["cv_std"],
                "fit_s": row["fit_seconds"], "folds": row["folds"], ILLUSTRATION_KEY: row.get(ILLUSTRATION_KEY)}

    def chosen_C(self, rows: list[dict[str, Any]]) -> float:
        """Best mean CV accuracy; ties go to the smaller C (as :func:`choose_C`)."""
        return max(rows, key=lambda r: (r["cv_acc"], -r["C"]))["C"]

    def figures(self, rows: list[dict[str, Any]], out: Path) -> list[Path]:
        curve = [{"C": r["C"], "cv_mean": r["cv_acc"], "cv_std": r["cv_std"], "fit_seconds": r["fit_s"],
                  **({ILLUSTRATION_KEY: r[ILLUSTRATION_KEY]} if r.get(ILLUSTRATION_KEY) is not None else {})}
                 for r in rows]
        return [plot_cv_curve(curve, out / "C_sweep.png")]

    def summary(self, rows: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        """Score the CV-chosen C and C=1 on the test split, once each."""
        backbone, layer, options, result = self.default_features()
        feats = result.features[layer]
        chosen = self.chosen_C(rows)
        tests = []
        for label, C in (("cv-chosen", chosen), ("assignment C=1", 1.0)):
            metrics = probe_metrics(feats, backbone, layer, options, replace(self.linear, C=C), cv=False)
            tests.append({"which": label, "C": C, **{k: v for k, v in drop_private(metrics).items()
                                                    if k in ("test_acc", "fit_s", "feature_size", "n_train", "n_test")}})
        write_table(tests, out, "C_test")
        return {"layer": layer, "chosen_C": chosen, "chosen_cv_acc": max(r["cv_acc"] for r in rows),
                "test_acc_chosen_C": tests[0]["test_acc"], "test_acc_C1": tests[1]["test_acc"]}
