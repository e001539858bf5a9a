"""Linear classifiers on deep features, and choosing C by cross-validation on the training split only.

The assignment's classifier is scikit-learn's one-vs-rest ``LinearSVC(C=1.0)`` on L2-normalised
features (Chatfield et al. 2014); logistic regression is the alternative; PCA can come first.
``solver`` picks who minimises the objective: scikit-learn (``liblinear``: liblinear for the SVM, its lbfgs
for logistic regression) or torch (:class:`~transferlab.classify.torch_linear.TorchLinearClassifier`, the
same objectives, on the GPU when present and out of core on memory-mapped features); ``auto`` takes
scikit-learn below :data:`TORCH_FROM_ELEMENTS` feature values, and torch above it or for memory-mapped features.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from ..errors import ConfigError
from .torch_linear import TorchLinearClassifier, is_memory_mapped

CLASSIFIERS = ("svm", "logreg")
SOLVERS = ("auto", "liblinear", "torch")
DEFAULT_C_GRID = tuple(float(c) for c in np.logspace(-4, 4, 9))
# --solver auto: scikit-learn below this many feature values (n_samples x n_features), torch from there on.
# Measured by benchmarks/linear_solvers.py (10 classes, 2,048 features, C=1) on the quiet 2-core development machine
# (benchmarks/RESULTS.md, "Linear solvers"): LinearSVC faster at 500 rows (0.5 s vs 1.0 s), torch from 1,000 rows
# (0.42 s vs 0.85 s) to 64,000 (38 s vs 91 s); 2,000 x 2,048 leaves a margin for a busy machine, where torch's
# threads suffered more. Memory-mapped features always go to torch (liblinear copies them into RAM as float64).
TORCH_FROM_ELEMENTS = 4_000_000


def resolve_solver(solver: str, X=None) -> str:
    """``liblinear`` or ``torch`` for features ``X`` (``auto``: by size, torch for memory-mapped features)."""
    if solver not in SOLVERS:
        raise ConfigError(f"unknown --solver {solver!r}; expected one of {', '.join(SOLVERS)}")
    if solver == "liblinear" and X is not None and is_memory_mapped(X):
        logging.getLogger("transferlab").warning(
            "--solver liblinear copies the memory-mapped features into RAM (as float64, ~%.1f GB); --solver torch "
            "trains on them out of core", X.shape[0] * X.shape[1] * 8 / 1e9)
    if solver != "auto":
        return solver
    if X is None:
        return "liblinear"
    return "torch" if is_memory_mapped(X) or X.shape[0] * X.shape[1] >= TORCH_FROM_ELEMENTS else "liblinear"


def make_classifier(kind: str = "svm", C: float = 1.0, pca: int | None = None, seed: int = 0,
                    solver: str = "liblinear", X=None, device: str = "auto",
                    max_memory_gb: float | None = None) -> BaseEstimator:
    """``LinearSVC(C)`` or ``LogisticRegression(C)`` (or the torch solver of the same objective, see
    :func:`resolve_solver`; ``X``: the features it will be fitted on; ``max_memory_gb``: the most features it
    loads into RAM, past which it trains out of core), preceded by ``PCA(pca)`` when asked."""
    if kind not in CLASSIFIERS:
        raise ConfigError(f"unknown classifier {kind!r}; expected one of {', '.join(CLASSIFIERS)}")
    if not C > 0:
        raise ConfigError(f"--C must be positive (or 'auto'); got {C}")
    solver = resolve_solver(solver, X)
    # random_state only fixes liblinear's coordinate order (determinism); the model is the assignment's.
    if solver == "torch":
        head = TorchLinearClassifier("squared_hinge" if kind == "svm" else "log_loss", C, device=device,
                                     max_memory_gb=max_memory_gb, random_state=seed)
    elif kind == "svm":
        head = LinearSVC(C=C, random_state=seed)
    else:
        head = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    if pca is None:
        return head
    if pca < 1:
        raise ConfigError(f"--pca must be a positive number of components; got {pca}")
    return Pipeline([("pca", PCA(n_components=pca, random_state=seed)), ("classifier", head)])


def fit_classifier(estimator: BaseEstimator, X: np.ndarray, y: np.ndarray) -> tuple[BaseEstimator, float]:
    """Fit and return (estimator, seconds); a PCA larger than the data is a clear error."""
    pca = estimator.named_steps["pca"] if isinstance(estimator, Pipeline) else None
    if pca is not None and pca.n_components > min(X.shape):
        raise ConfigError(f"--pca {pca.n_components} is more than min(n_samples, n_features) = {min(X.shape)}; "
                          "choose fewer components")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y)
    return estimator, time.perf_counter() - start


def cv_folds(y: np.ndarray, folds: int) -> int:
    """The number of stratified folds the smallest class allows (at most ``folds``, at least 2)."""
    smallest = int(np.bincount(y).min())
    if smallest < 2:
        raise ConfigError("choosing C by cross-validation needs at least 2 training images per class")
    return min(folds, smallest)


def choose_C(kind: str, X_train: np.ndarray, y_train: np.ndarray, grid=DEFAULT_C_GRID, folds: int = 5,
             pca: int | None = None, seed: int = 0, solver: str = "liblinear",
             device: str = "auto", max_memory_gb: float | None = None) -> tuple[float, list[dict]]:
    """Pick C by stratified k-fold CV **on the training split only**; return (best C, CV curve).

    The curve has one row per C: mean and std CV accuracy, mean fit time. The test split never enters.
    Memory-mapped features are never copied into RAM: each fold is the whole memory map with the other
    folds' rows weighted zero (:func:`_cv_by_weights`).
    """
    k = cv_folds(y_train, folds)
    estimator = make_classifier(kind, 1.0, pca, seed, solver, X_train, device, max_memory_gb)
    if is_memory_mapped(X_train) and isinstance(estimator, TorchLinearClassifier):
        curve = _cv_by_weights(estimator, X_train, y_train, grid, k, seed)
        best = max(curve, key=lambda row: (row["cv_mean"], -row["C"]))
        return best["C"], curve
    key = "classifier__C" if isinstance(estimator, Pipeline) else "C"
    search = GridSearchCV(estimator, {key: list(grid)}, cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                          scoring="accuracy", refit=False, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X_train, y_train)
    results = search.cv_results_
    curve = [{"C": float(c), "cv_mean": float(m), "cv_std": float(s), "fit_seconds": float(t), "folds": k}
             for c, m, s, t in zip(results[f"param_{key}"], results["mean_test_score"], results["std_test_score"],
                                   results["mean_fit_time"])]
    best = max(curve, key=lambda row: (row["cv_mean"], -row["C"]))  # ties: the smaller C (more regularised)
    return best["C"], curve


def _cv_by_weights(estimator: TorchLinearClassifier, X, y: np.ndarray, grid, k: int, seed: int) -> list[dict]:
    """The CV curve of :func:`choose_C` (the same stratified, seeded folds) for features left on disk: a fold's
    model is fitted on all rows with the held-out ones weighted zero, and scored on the held-out rows."""
    from sklearn.base import clone

    splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    curve = []
    for C in grid:
        scores, seconds = [], []
        for train, held_out in splits:
            weights = np.zeros(len(y), np.float32)
            weights[train] = 1.0
            start = time.perf_counter()
            model = clone(estimator).set_params(C=float(C)).fit(X, y, sample_weight=weights)
            seconds.append(time.perf_counter() - start)
            scores.append(float(np.mean(model.predict(X)[held_out] == y[held_out])))
        curve.append({"C": float(C), "cv_mean": float(np.mean(scores)), "cv_std": float(np.std(scores)),
                      "fit_seconds": float(np.mean(seconds)), "folds": k})
    return curve
