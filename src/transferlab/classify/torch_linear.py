"""``TorchLinearClassifier``: LinearSVC's and LogisticRegression's objectives solved in torch, out of core.

The objectives are scikit-learn's own, so that ``--solver torch`` learns the model ``--solver liblinear`` does
(same ``coef_``/``intercept_``/``classes_``, hence the one saved linear-model format):

* ``loss="squared_hinge"`` — ``LinearSVC`` (liblinear, Fan et al. 2008, JMLR 9): one-vs-rest, for each class
  ``0.5 ||[w, b']||^2 + C sum_i max(0, 1 - y_i (w.x_i + s b'))^2`` with ``y_i = ±1``. The intercept is handled
  as liblinear does: a synthetic feature of constant value ``s = intercept_scaling`` is appended to every row
  and its weight ``b'`` is regularised like the others; ``intercept_ = s b'``.
* ``loss="log_loss"`` — ``LogisticRegression`` with its default lbfgs solver: multinomial (softmax) for more
  than two classes, a sigmoid for two; ``0.5 ||W||^2 + C sum_i -log p(y_i | x_i)``, intercept not
  regularised.

Solvers: full-batch L-BFGS (``torch.optim.LBFGS`` with a strong-Wolfe line search; Nocedal 1980) when the
features fit the memory budget of the device. Otherwise out of core: a warm start by minibatch Adam (Kingma &
Ba 2015, cosine-decayed step, contiguous row blocks in a seeded random order), then the same L-BFGS with each
evaluation's gradient summed block by block, so that a ``np.memmap`` of features larger than RAM is read in
sequential blocks and never whole, and the solution is the full objective's. On the GPU when there is one
(``device="auto"``).
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ..errors import ConfigError
from ..features.memmap import mapped_file

LOSSES = ("squared_hinge", "log_loss")
METHODS = ("auto", "lbfgs", "minibatch")
CHUNK_ROWS = 65_536  # rows per block when predicting on (memory-mapped) features


def available_memory_bytes(device: torch.device) -> int:
    """Free memory of ``device``: the GPU's free memory, or the host's ``MemAvailable`` (Linux)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def is_memory_mapped(X) -> bool:
    """Whether ``X`` lives on disk (a ``np.memmap`` or a view of one) rather than in RAM."""
    return mapped_file(X) is not None


class TorchLinearClassifier(ClassifierMixin, BaseEstimator):
    """A linear classifier (LinearSVC's or LogisticRegression's objective, see the module docstring) fitted
    in torch; a scikit-learn estimator (``clone``, ``GridSearchCV``, ``Pipeline`` work).

    Parameters
    ----------
    loss : "squared_hinge" (LinearSVC) or "log_loss" (LogisticRegression).
    C : inverse regularisation strength, as in scikit-learn.
    fit_intercept, intercept_scaling : as in scikit-learn (``intercept_scaling`` only for the squared hinge).
    method : "lbfgs" (full batch), "minibatch", or "auto": full batch when the features fit in
        ``memory_fraction`` of the device's free memory and, on the CPU, in ``max_memory_gb`` (transferlab
        passes ``--max-feature-gb``); features already in RAM always do on the CPU.
    max_iter, tol : L-BFGS iterations and tolerance on the change of the (scaled) objective.
    epochs, batch_size, lr : the out-of-core solver's warm start: minibatch Adam's passes over the data, rows
        per step and first step size.
    block_rows : rows per block when the out-of-core L-BFGS streams the features.
    device : "auto" (CUDA when available), "cpu", "cuda"...
    random_state : seeds the minibatch order.
    """

    def __init__(self, loss: str = "squared_hinge", C: float = 1.0, *, fit_intercept: bool = True,
                 intercept_scaling: float = 1.0, method: str = "auto", max_iter: int = 500, tol: float = 1e-9,
                 epochs: int = 2, batch_size: int = 1024, lr: float = 0.01, block_rows: int = CHUNK_ROWS,
                 memory_fraction: float = 0.5, max_memory_gb: float | None = None,
                 device: str = "auto", random_state: int | None = 0) -> None:
        self.loss = loss
        self.C = C
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.method = method
        self.max_iter = max_iter
        self.tol = tol
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.block_rows = block_rows
        self.memory_fraction = memory_fraction
        self.max_memory_gb = max_memory_gb
        self.device = device
        self.random_state = random_state

    # -- fitting ----------------------------------------------------------------------------------
    def _validate(self, X, y) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}; got {self.loss!r}")
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if not (self.C > 0 and math.isfinite(self.C)):
            raise ConfigError(f"C must be a positive finite number; got {self.C}")
        if getattr(X, "ndim", None) != 2 or len(X) != len(y) or len(X) == 0:
            raise ConfigError(f"expected features of shape (n_samples, n_features) and n_samples labels; got "
                              f"{getattr(X, 'shape', None)} and {len(y)} labels")

    def _device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def chosen_method(self, X) -> str:
        """The solver ``fit`` uses for ``X``: ``lbfgs`` when it fits the memory budget, else ``minibatch``."""
        if self.method != "auto":
            return self.method
        device = self._device()
        if device.type == "cpu" and not is_memory_mapped(X):
            return "lbfgs"  # already in RAM: the full batch costs no copy (float32, C order)
        need = X.shape[0] * X.shape[1] * 4
        budget = self.memory_fraction * available_memory_bytes(device)
        if device.type == "cpu" and self.max_memory_gb is not None:
            budget = min(budget, self.max_memory_gb * 1e9)
        return "lbfgs" if need <= budget else "minibatch"

    def fit(self, X, y, sample_weight=None) -> "TorchLinearClassifier":
        """Fit on features ``X`` (an array or a ``np.memmap``) and labels ``y``; ``sample_weight`` scales
        each row's C (as liblinear and lbfgs do)."""
        y = np.asarray(y)
        self._validate(X, y)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ConfigError(f"a classifier needs at least 2 classes in the training labels; got "
                              f"{len(self.classes_)}")
        self.n_features_in_ = int(X.shape[1])
        weights = np.ones(len(y), np.float32) if sample_weight is None else np.asarray(sample_weight, np.float32)
        device = self._device()
        rows = 1 if len(self.classes_) == 2 else len(self.classes_)
        W = torch.zeros(rows, X.shape[1], dtype=torch.float32, device=device, requires_grad=True)
        b = torch.zeros(rows, dtype=torch.float32, device=device, requires_grad=self.fit_intercept)
        objective = _Objective(self.loss, float(self.C), len(self.classes_), self.fit_intercept,
                               float(self.intercept_scaling), float(weights.sum()))
        self.method_ = self.chosen_method(X)
        if self.method_ == "lbfgs":
            self.n_iter_ = _fit_lbfgs(objective, W, b, X, y_index, weights, device, self.max_iter, self.tol)
        else:  # out of core: a minibatch warm start, then L-BFGS on gradients summed block by block
            _fit_minibatch(objective, W, b, X, y_index, weights, device, self.epochs, self.batch_size, self.lr,
                           self.random_state)
            self.n_iter_ = _fit_lbfgs(objective, W, b, X, y_index, weights, device, self.max_iter, self.tol,
                                      block_rows=self.block_rows)
        with torch.no_grad():
            self.objective_ = float(objective.total(W, b, X, y_index, weights, device))
            self.coef_ = W.detach().cpu().numpy().astype(np.float64)
            intercept = b.detach().cpu().numpy().astype(np.float64)
            self.intercept_ = intercept * objective.scale if self.fit_intercept else np.zeros(rows)
        return self

    # -- predicting -------------------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """Decision values (n_samples,) for two classes, else (n_samples, n_classes); block by block."""
        check_is_fitted(self, "coef_")
        if getattr(X, "ndim", None) != 2 or X.shape[1] != self.n_features_in_:
            raise ConfigError(f"expected features of width {self.n_features_in_}; got shape "
                              f"{getattr(X, 'shape', None)}")
        out = np.empty((X.shape[0], self.coef_.shape[0]), np.float64)
        for start in range(0, X.shape[0], CHUNK_ROWS):
            block = np.asarray(X[start:start + CHUNK_ROWS], np.float64)
            out[start:start + len(block)] = block @ self.coef_.T + self.intercept_
        return out[:, 0] if out.shape[1] == 1 else out

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[index]

    def _is_logistic(self) -> bool:
        return self.loss == "log_loss"

    @available_if(_is_logistic)
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (``loss="log_loss"`` only): a sigmoid for two classes, else a softmax."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-scores))
            return np.stack([1 - p, p], axis=1)
        scores = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)

    @available_if(_is_logistic)
    def predict_log_proba(self, X) -> np.ndarray:
        return np.log(self.predict_proba(X))


class _Objective:
    """scikit-learn's objective divided by ``C * sum(sample_weight)`` (same minimiser, better scaled)."""

    def __init__(self, loss: str, C: float, n_classes: int, fit_intercept: bool, intercept_scaling: float,
                 weight_sum: float) -> None:
        self.loss, self.C, self.n_classes, self.fit_intercept = loss, C, n_classes, fit_intercept
        # liblinear's synthetic feature: the intercept's weight is regularised; lbfgs: it is not
        self.scale = intercept_scaling if loss == "squared_hinge" else 1.0
        self.norm = C * max(weight_sum, 1e-12)

    def regulariser(self, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        value = 0.5 * (W * W).sum()
        if self.fit_intercept and self.loss == "squared_hinge":
            value = value + 0.5 * (b * b).sum()
        return value / self.norm

    def data_term(self, W, b, X: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``sum_i w_i loss_i / sum(w)`` of one block of rows."""
        scores = X @ W.T
        if self.fit_intercept:
            scores = scores + self.scale * b
        if self.loss == "squared_hinge":
            if self.n_classes == 2:
                signs = (2 * y - 1).to(scores.dtype)[:, None]
            else:
                signs = -torch.ones_like(scores)
                signs[torch.arange(len(y), device=y.device), y] = 1.0
            per_row = torch.clamp(1 - signs * scores, min=0).square().sum(dim=1)
        elif self.n_classes == 2:
            per_row = torch.nn.functional.binary_cross_entropy_with_logits(
                scores[:, 0], y.to(scores.dtype), reduction="none")
        else:
            per_row = torch.nn.functional.cross_entropy(scores, y, reduction="none")
        return (w * per_row).sum() * self.C / self.norm

    def total(self, W, b, X, y_index: np.ndarray, weights: np.ndarray, device) -> torch.Tensor:
        value = self.regulariser(W, b)
        for start in range(0, X.shape[0], CHUNK_ROWS):
            Xb, yb, wb = _block(X, y_index, weights, start, start + CHUNK_ROWS, device)
            value = value + self.data_term(W, b, Xb, yb, wb)
        return value * self.norm  # back to scikit-learn's scale


def _block(X, y_index, weights, start: int, stop: int, device):
    with warnings.catch_warnings():  # a read-only memory map: the tensor is only ever read
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        Xb = torch.from_numpy(np.ascontiguousarray(X[start:stop], dtype=np.float32)).to(device, non_blocking=True)
    yb = torch.from_numpy(np.asarray(y_index[start:stop], np.int64)).to(device)
    wb = torch.from_numpy(np.asarray(weights[start:stop], np.float32)).to(device)
    return Xb, yb, wb


def _on_device(X, device) -> torch.Tensor:
    """All of ``X`` as one float32 tensor on ``device``: no copy for float32 rows in RAM on the CPU; a memory
    map (or any array bound for the GPU) is copied in blocks, never through a second whole copy in RAM."""
    if device.type == "cpu" and not is_memory_mapped(X):
        return _block(X, np.zeros(0), np.zeros(0), 0, X.shape[0], device)[0]
    out = torch.empty(X.shape, dtype=torch.float32, device=device)
    for start in range(0, X.shape[0], CHUNK_ROWS):
        out[start:start + CHUNK_ROWS] = _block(X, np.zeros(0), np.zeros(0), start, start + CHUNK_ROWS, device)[0]
    return out


def _fit_lbfgs(objective: _Objective, W, b, X, y_index, weights, device, max_iter: int, tol: float,
               block_rows: int | None = None) -> int:
    """L-BFGS on the full objective. ``block_rows`` None: the features are one tensor on ``device`` (no copy
    for float32 rows in RAM on the CPU); else each evaluation streams ``X`` in blocks of that many rows and
    sums their gradients (the same objective and iterates, memory bounded by one block)."""
    params = [W, b] if objective.fit_intercept else [W]
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=1e-10,
                                  tolerance_change=tol, line_search_fn="strong_wolfe")
    if block_rows is None:
        Xt, yt, wt = _on_device(X, device), *_block(X[:0], y_index, weights, 0, X.shape[0], device)[1:]

        def closure():
            optimizer.zero_grad()
            value = objective.regulariser(W, b) + objective.data_term(W, b, Xt, yt, wt)
            value.backward()
            return value
    else:
        def closure():
            optimizer.zero_grad()
            value = objective.regulariser(W, b)
            value.backward()
            total = value.detach()
            for start in range(0, X.shape[0], block_rows):
                part = objective.data_term(W, b, *_block(X, y_index, weights, start, start + block_rows, device))
                part.backward()
                total = total + part.detach()
            return total

    optimizer.step(closure)
    return int(optimizer.state[optimizer._params[0]].get("n_iter", 0))


def _fit_minibatch(objective: _Objective, W, b, X, y_index, weights, device, epochs: int, batch_size: int,
                   lr: float, seed: int | None) -> int:
    """Minibatch Adam over blocks of ``batch_size`` consecutive rows, blocks in a seeded random order per
    epoch (sequential reads from a memory map), the step decaying along a cosine to zero: a warm start for
    the streamed L-BFGS that follows (Adam alone stops far from the optimum of these weakly regularised
    objectives: 89-92 % the same predictions as liblinear on the digits, against 100 % after L-BFGS)."""
    n = X.shape[0]
    starts = np.arange(0, n, batch_size)
    params = [W, b] if objective.fit_intercept else [W]
    optimizer = torch.optim.Adam(params, lr=lr)
    steps = max(1, epochs * len(starts))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for start in rng.permutation(starts):
            Xb, yb, wb = _block(X, y_index, weights, int(start), int(start) + batch_size, device)
            share = float(wb.sum()) * objective.C / objective.norm  # this block's part of the data term
            optimizer.zero_grad()
            # an unbiased estimate of the full objective: the block's data term scaled up to all rows
            value = objective.regulariser(W, b) + objective.data_term(W, b, Xb, yb, wb) / max(share, 1e-12)
            value.backward()
            optimizer.step()
            schedule.step()
    return steps
