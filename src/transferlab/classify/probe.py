"""Linear classifiers on deep features, and choosing C by cross-validation on the training split only.

The assignment's classifier is scikit-learn's one-vs-rest ``LinearSVC(C=1.0)`` on L2-normalised
features (Chatfield et al. 2014); logistic regression is the alternative; PCA can come first.
"""

from __future__ import annotations

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

CLASSIFIERS = ("svm", "logreg")
DEFAULT_C_GRID = tuple(float(c) for c in np.logspace(-4, 4, 9))


def make_classifier(kind: str = "svm", C: float = 1.0, pca: int | None = None, seed: int = 0) -> BaseEstimator:
    """``LinearSVC(C)`` or ``LogisticRegression(C)``, preceded by ``PCA(pca)`` when asked."""
    if kind not in CLASSIFIERS:
        raise ConfigError(f"unknown classifier {kind!r}; expected one of {', '.join(CLASSIFIERS)}")
    if not C > 0:
        raise ConfigError(f"--C must be positive (or 'auto'); got {C}")
    # random_state only fixes liblinear's coordinate order (determinism); the model is the assignment's.
    if kind == "svm":
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
             pca: int | None = None, seed: int = 0) -> tuple[float, list[dict]]:
    """Pick C by stratified k-fold CV **on the training split only**; return (best C, CV curve).

    The curve has one row per C: mean and std CV accuracy, mean fit time. The test split never enters.
    """
    k = cv_folds(y_train, folds)
    estimator = make_classifier(kind, 1.0, pca, seed)
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
