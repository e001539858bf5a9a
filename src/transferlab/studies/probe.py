"""What every study does with features: fetch them (cached) and score a head on them.

:class:`FeatureSource` loads each backbone once and asks :func:`transferlab.pipeline.features_for`
for the layers a condition needs (the on-disk cache makes a second study over the same layers run
no forward pass). :func:`probe_metrics` fits exactly what ``transferlab run`` fits
(:func:`transferlab.classify.fit_probe`), so a study's test accuracy equals that of ``run`` with the
same settings; the CV accuracy it reports is k-fold CV on the training split only.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from sklearn.metrics import accuracy_score

from ..backbones import Backbone, layer_shapes, load_backbone
from ..classify import LinearOptions, choose_C, fit_probe
from ..classify.probe import resolve_solver
from ..features import SplitFeatures
from ..pipeline import DatasetFeatures, ExtractionOptions, features_for


def effective_pooling(backbone: Backbone, layer: str, pooling: str) -> str:
    """``pooling`` for spatial / token outputs; ``none`` for vectors (identical values, shared cache)."""
    shape = layer_shapes(backbone.spec, [layer])[layer]
    return pooling if len(shape) > 1 else "none"


class FeaturesFetched(Exception):
    """Raised by :meth:`FeatureSource.get` inside :meth:`FeatureSource.fetch_only` once the features are in."""


class FeatureSource:
    """Backbones loaded once; the features of the last request kept in memory (bounded memory)."""

    def __init__(self, data: Path | str, extraction: ExtractionOptions) -> None:
        self.data, self.extraction = data, extraction
        self._backbones: dict[str, Backbone] = {}
        self._last: tuple[tuple, DatasetFeatures] | None = None
        self._fetch_only = False

    @contextlib.contextmanager
    def fetch_only(self) -> Iterator[None]:
        """Inside, :meth:`get` extracts (or finds) the features and then stops its caller with
        :class:`FeaturesFetched`: a study's conditions run up to their features and no further (how torchrun's
        ranks extract a study's features together before rank 0 fits, ``runner._shared_conditions``)."""
        self._fetch_only = True
        try:
            yield
        finally:
            self._fetch_only = False

    def backbone(self, name: str | None = None, keep: bool = True) -> Backbone:
        """Load ``name`` (default: the study's backbone); ``keep=False`` holds only one model at a time."""
        name = name or self.extraction.backbone
        if name not in self._backbones:
            if not keep:
                self._backbones.clear()
                self._last = None
            self._backbones[name] = load_backbone(name, self.extraction.weights, seed=self.extraction.seed,
                                                  preprocessing_mode=self.extraction.preprocess)
        return self._backbones[name]

    def options(self, layers: list[str], pooling: str | None = None, backbone: str | None = None
                ) -> ExtractionOptions:
        """The extraction options ``transferlab run`` would use for these layers."""
        return replace(self.extraction, layers=list(layers), backbone=backbone or self.extraction.backbone,
                       pooling=self.extraction.pooling if pooling is None else pooling)

    def get(self, options: ExtractionOptions, backbone: Backbone | None = None) -> DatasetFeatures:
        backbone = backbone or self.backbone(options.backbone)
        key = (backbone.name, id(backbone.spec), tuple(options.layers), options.pooling)
        if self._last is None or self._last[0] != key:
            self._last = None  # free the previous matrices before extracting the next ones
            self._last = (key, features_for(self.data, options, backbone=backbone))
        if self._fetch_only:
            raise FeaturesFetched
        return self._last[1]


def cv_accuracy(feats: SplitFeatures, linear: LinearOptions, seed: int, device: str = "auto",
                max_memory_gb: float | None = None) -> tuple[float, float, float]:
    """(chosen C, mean, std) of k-fold CV accuracy on the training split (C fixed, or chosen when auto)."""
    grid = linear.c_grid if linear.C == "auto" else (float(linear.C),)
    best, curve = choose_C(linear.classifier, feats.X_train, feats.y_train, grid, linear.cv_folds, linear.pca, seed,
                           resolve_solver(linear.solver, feats.X_train), device, max_memory_gb)
    row = next(r for r in curve if r["C"] == best)
    return best, row["cv_mean"], row["cv_std"]


def probe_metrics(feats: SplitFeatures, backbone: Backbone, layer: str, extraction: ExtractionOptions,
                  linear: LinearOptions, cv: bool = True) -> dict[str, Any]:
    """Fit ``linear`` on train (as ``transferlab run`` does), score test once; CV accuracy on train."""
    C, cv_mean, cv_std = linear.C, None, None
    if cv or C == "auto":
        C, cv_mean, cv_std = cv_accuracy(feats, linear, extraction.seed, extraction.device,
                                         extraction.max_feature_gb)
    # make_classifier builds LinearSVC(random_state=None): liblinear's seed comes from NumPy's global RNG,
    # which the CV above consumed; reseed so the fit depends on --seed only (not on how many CV fits ran).
    np.random.seed(extraction.seed % 2**32)
    model, info = fit_probe(feats, backbone, layer, extraction, replace(linear, C=float(C)))
    start = time.perf_counter()
    y_pred = model.predict(feats.X_test)
    predict_seconds = time.perf_counter() - start
    return {"test_acc": float(accuracy_score(feats.y_test, y_pred)), "cv_acc": cv_mean, "cv_std": cv_std,
            "C": float(C), **shape_metrics(feats), "fit_s": round(info["fit_seconds"], 5),
            "predict_s": round(predict_seconds, 5), "_model": model}


def shape_metrics(feats: SplitFeatures) -> dict[str, Any]:
    return {"feature_size": int(feats.X_train.shape[1]), "n_train": int(len(feats.y_train)),
            "n_test": int(len(feats.y_test)),
            "feature_mb": round((feats.X_train.nbytes + feats.X_test.nbytes) / 1e6, 3)}


def extraction_metrics(result: DatasetFeatures) -> dict[str, Any]:
    """Extraction time and speed; a cache hit has no speed to report (``images_forwarded`` = 0)."""
    ex = result.extraction
    return {"extract_s": round(ex.seconds, 4), "images_forwarded": int(ex.n_forward),
            "extract_img_per_s": round(ex.n_forward / ex.seconds, 2) if ex.n_forward and ex.seconds else None}


def drop_private(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not k.startswith("_")}


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(accuracy_score(y_true, y_pred))
