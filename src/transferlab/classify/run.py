"""``transferlab run``: extract (cached) + fit + evaluate + save, and its library twins ``fit``/``run_linear``.

C is either given (the assignment's C=1) or chosen by cross-validation on the training split only;
the test split is scored once, at the end, and never used for a choice.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..backbones import Backbone
from ..errors import ConfigError
from ..features import SplitFeatures
from ..features.distributed import ExtractionGroup
from ..pipeline import ExtractionOptions, features_for, log_extraction, run_config, write_skipped
from ..report.plots import save_figure
from ..runs import Run
from .evaluate import write_evaluation
from .linear_model import LinearProbeModel
from .probe import DEFAULT_C_GRID, choose_C, fit_classifier, make_classifier, resolve_solver
from .torch_linear import is_memory_mapped


@dataclass
class LinearOptions:
    classifier: str = "svm"
    C: float | str = 1.0          # a positive number, or "auto" (CV on train)
    pca: int | None = None
    cv_folds: int = 5
    c_grid: tuple[float, ...] = DEFAULT_C_GRID
    repeats: int = 1
    solver: str = "auto"          # liblinear (scikit-learn), torch, or auto (by size; see classify/probe.py)


def parse_C(value: str | float) -> float | str:
    if isinstance(value, str) and value.lower() == "auto":
        return "auto"
    try:
        C = float(value)
    except ValueError:
        raise ConfigError(f"--C must be a positive number or 'auto'; got {value!r}") from None
    if not (C > 0 and math.isfinite(C)):
        raise ConfigError(f"--C must be a positive finite number or 'auto'; got {value!r}")
    return C


def fit_probe(feats: SplitFeatures, backbone: Backbone, layer: str, extraction: ExtractionOptions,
              linear: LinearOptions) -> tuple[LinearProbeModel, dict[str, Any]]:
    """Fit the classifier on the training rows only (choosing C by CV there when ``C == "auto"``)."""
    C, curve = linear.C, None
    solver = resolve_solver(linear.solver, feats.X_train)
    if C == "auto":
        C, curve = choose_C(linear.classifier, feats.X_train, feats.y_train, linear.c_grid, linear.cv_folds,
                            linear.pca, extraction.seed, solver, extraction.device, extraction.max_feature_gb)
    estimator, seconds = fit_classifier(make_classifier(linear.classifier, float(C), linear.pca, extraction.seed,
                                                        solver, device=extraction.device,
                                                        max_memory_gb=extraction.max_feature_gb),
                                        feats.X_train, feats.y_train)
    model = LinearProbeModel(backbone, layer, extraction.pooling, extraction.l2, list(feats.classes), estimator,
                             extraction.weights, extraction.seed, linear.classifier)
    head = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return model, {"C": float(C), "cv_curve": curve, "fit_seconds": seconds, "solver": solver,
                   "solver_method": getattr(head, "method_", None)}  # torch: lbfgs (in memory) or minibatch


def fit(data: Path | str, *, backbone: str = "vgg16", weights: str = "imagenet", layer: str | None = None,
        classifier: str = "svm", C: float | str = 1.0, pca: int | None = None, solver: str = "auto",
        **extraction) -> LinearProbeModel:
    """Library verb: split ``data``, extract features, fit and return a :class:`LinearProbeModel`."""
    options = ExtractionOptions(backbone=backbone, weights=weights, layers=[layer] if layer else [], **extraction)
    result = features_for(data, options)
    layer_name, feats = next(iter(result.features.items()))
    model, _ = fit_probe(feats, result.backbone, layer_name, options,
                         LinearOptions(classifier, parse_C(C), pca, solver=solver))
    return model


def run_linear(data: Path | str, out: Path | str | None = None, extraction: ExtractionOptions | dict | None = None,
               linear: LinearOptions | dict | None = None, **kwargs) -> dict[str, Any]:
    """``transferlab run``: writes metrics, confusion matrix, CV curve, model, config and report to ``out``.

    Keyword arguments are a shortcut for the fields of :class:`ExtractionOptions` and
    :class:`LinearOptions` (``run_linear(data, backbone="resnet18", C="auto")``); the two option objects may
    also be given as dicts (as ``config.json`` records them, for ``transferlab rerun``). Returns the metrics
    (under torchrun the ranks share the extraction; rank 0 alone fits and writes, the others return ``{}``).
    """
    if isinstance(extraction, dict):
        extraction = ExtractionOptions(**extraction)
    if isinstance(linear, dict):  # a config.json from before --solver was fitted by liblinear: rerun it so
        linear = LinearOptions(**{"solver": "liblinear", **linear,
                                  "c_grid": tuple(linear.get("c_grid", DEFAULT_C_GRID))})
    # copies: the caller's option objects are never changed
    extraction = replace(extraction) if extraction else ExtractionOptions(
        **{k: v for k, v in kwargs.items() if k in ExtractionOptions.__dataclass_fields__})
    if "layer" in kwargs and kwargs["layer"]:
        extraction.layers = [kwargs["layer"]]
    linear = replace(linear) if linear else LinearOptions(
        **{k: v for k, v in kwargs.items() if k in LinearOptions.__dataclass_fields__})
    if linear.C != "auto":
        linear.C = parse_C(linear.C)
    if linear.repeats < 1:
        raise ConfigError(f"--repeats must be at least 1; got {linear.repeats}")
    resolve_solver(linear.solver)  # an unknown --solver is refused before any work
    if extraction.grayscale != "duplicate":  # a saved linear model rebuilds the RGB network (docs/core.md)
        raise ConfigError(f"run saves a linear model on the RGB network, so --grayscale must be duplicate; got "
                          f"{extraction.grayscale!r} (use it with extract or finetune)")
    call = {"data": str(data), "extraction": extraction, "linear": linear}
    group = ExtractionGroup(extraction.device)
    if not group.is_main:  # under torchrun: help extract, then leave fitting and writing to rank 0
        group.help(lambda: features_for(data, extraction))
        return {}
    with Run("run", "transferlab.classify.run:run_linear", call, out, inputs=(data,)) as run:
        with group:
            result = features_for(data, extraction)
        if linear.repeats > 1 and result.split.layout == "train/test":
            raise ConfigError("--repeats draws new train/test splits, but this dataset has a fixed train/ and test/ "
                              "split; use a single-folder dataset or --repeats 1")
        run.record(data=str(data), **run_config(extraction, result),
                   **{k: v for k, v in asdict(linear).items() if k != "c_grid"}, c_grid=list(linear.c_grid))
        log_extraction(run.log, result)
        layer, feats = next(iter(result.features.items()))
        model, info = fit_probe(feats, result.backbone, layer, extraction, linear)
        # after the choice: shown beside the CV curve, never used for it; not out of core (a fit per C on 10^6 rows)
        if info["cv_curve"] and not is_memory_mapped(feats.X_train):
            add_test_accuracy_per_C(info["cv_curve"], linear.classifier, feats, linear.pca, extraction.seed,
                                    info["solver"], extraction.device, extraction.max_feature_gb)
        start = time.perf_counter()
        y_pred = model.predict(feats.X_test)
        predict_seconds = time.perf_counter() - start
        repeats = _repeat_accuracies(data, extraction, linear, result.backbone,
                                     first=float(np.mean(y_pred == feats.y_test)))
        metrics = write_evaluation(
            run.out, feats.y_test, y_pred, feats.classes, feats.paths_test, backbone=result.backbone.name,
            layer=layer, classifier=linear.classifier, chosen_C=info["C"],
            C_mode="cv-on-train" if linear.C == "auto" else "fixed", pca=linear.pca,
            feature_size=int(feats.X_train.shape[1]), n_train=int(len(feats.y_train)),
            extraction_seconds=result.extraction.seconds, images_forwarded=result.extraction.n_forward,
            fit_seconds=info["fit_seconds"], solver=info["solver"], solver_method=info["solver_method"],
            predict_seconds=predict_seconds, cv_curve=info["cv_curve"],
            repeats=repeats, n_skipped=len(feats.skipped))
        if info["cv_curve"]:
            plot_cv_curve(info["cv_curve"], run.out / "cv_curve.png")
        model.save(run.out / "model")
        write_skipped(run.out, feats.skipped)
        run.log.info("%s C=%g (%s) on %d training images: test accuracy %.4f on %d images", linear.classifier,
                     info["C"], metrics["C_mode"], metrics["n_train"], metrics["accuracy"], metrics["n_test"])
        from ..report.run_report import write_run_report

        write_run_report(run.out, metrics)
    return metrics


def _repeat_accuracies(data, extraction: ExtractionOptions, linear: LinearOptions, backbone: Backbone,
                       first: float) -> dict[str, Any] | None:
    """Accuracy over ``repeats`` seeded splits (seed, seed+1, ...); features come from the cache."""
    if linear.repeats == 1:
        return None
    accuracies = [first]
    for r in range(1, linear.repeats):
        result = features_for(data, extraction, backbone=backbone, seed=extraction.seed + r)
        layer, feats = next(iter(result.features.items()))
        model, _ = fit_probe(feats, backbone, layer, extraction, linear)
        accuracies.append(float(np.mean(model.predict(feats.X_test) == feats.y_test)))
    return {"seeds": [extraction.seed + r for r in range(linear.repeats)], "accuracies": accuracies,
            "mean": float(np.mean(accuracies)), "std": float(np.std(accuracies))}


ILLUSTRATION_KEY = "test_acc_illustration_only"
ILLUSTRATION_LABEL = "test accuracy (illustration only, not used to choose C)"


def add_test_accuracy_per_C(curve: list[dict], kind: str, feats: SplitFeatures, pca: int | None, seed: int,
                            solver: str = "liblinear", device: str = "auto",
                            max_memory_gb: float | None = None) -> None:
    """Add, to each row of a C curve, the test accuracy of the classifier refitted on the training rows at that C
    (``test_acc_illustration_only``), as seed 000's Figure 4 and seed 002's SVM-over-C bars plot it; the same
    solver as the run's fit. It is computed after C was chosen on the training folds and never feeds the choice:
    illustration only."""
    if not len(feats.y_test):
        return
    for row in curve:
        estimator, _ = fit_classifier(make_classifier(kind, float(row["C"]), pca, seed, solver, device=device,
                                                      max_memory_gb=max_memory_gb), feats.X_train, feats.y_train)
        row[ILLUSTRATION_KEY] = float(np.mean(estimator.predict(feats.X_test) == feats.y_test))


def plot_cv_curve(curve: list[dict], path: Path) -> Path:
    """Mean ± std CV accuracy and fit time per C (report 001, Figure 1.8); the per-C test accuracy, when the
    rows have it, as a separate dotted line labelled illustration only (seed 000, Figure 4)."""
    import matplotlib.pyplot as plt

    Cs = [row["C"] for row in curve]
    mean = np.array([row["cv_mean"] for row in curve])
    std = np.array([row["cv_std"] for row in curve])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(Cs, mean, yerr=std, marker="o", capsize=3, label="CV accuracy (train split)")
    if all(ILLUSTRATION_KEY in row for row in curve):
        ax.plot(Cs, [row[ILLUSTRATION_KEY] for row in curve], color="tab:red", ls=":", marker="s", ms=4,
                label=ILLUSTRATION_LABEL)
    ax.set_xscale("log")
    ax.set_xlabel("C")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(Cs, [row["fit_seconds"] for row in curve], color="gray", ls="--", marker=".", label="fit time")
    twin.set_ylabel("fit time (s)")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper center", bbox_to_anchor=(0.5, -0.16),
              ncol=2, fontsize=8)  # below the axes: the curves stay clear
    return save_figure(fig, path)
