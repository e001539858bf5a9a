"""``FeatureExtractor``: the extraction as a scikit-learn transformer (image paths in, vectors out).

Follows scikit-learn's conventions (``__init__`` only stores, validation in ``fit``, learned attributes
end in ``_``), so ``Pipeline([("features", FeatureExtractor()), ("svm", LinearSVC())])``, ``clone`` and
``GridSearchCV`` work. ``transform`` refuses a list with unreadable images (a pipeline cannot drop rows);
use :func:`~transferlab.features.extract_features` to skip and report them instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ..backbones import load_backbone
from ..errors import DataError
from .extract import extract_features


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """Image paths -> feature vectors of ``backbone`` at ``layer`` (Chatfield et al. 2014)."""

    def __init__(self, backbone: str = "vgg16", layer: str | None = None, weights: str = "imagenet",
                 preprocess: str = "weights", pooling: str = "none", l2: bool = True, batch_size: int | None = None,
                 device: str = "auto", workers: int | None = 0, precision: str = "fp32",
                 cache_dir: str | None = None, use_cache: bool = True, seed: int = 0, progress: bool = False):
        self.backbone = backbone
        self.layer = layer
        self.weights = weights
        self.preprocess = preprocess
        self.pooling = pooling
        self.l2 = l2
        self.batch_size = batch_size
        self.device = device
        self.workers = workers
        self.precision = precision
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.seed = seed
        self.progress = progress

    def fit(self, X=None, y=None):
        """Build the backbone (no learning happens: the network is fixed)."""
        self.backbone_ = load_backbone(self.backbone, self.weights, seed=self.seed,
                                       preprocessing_mode=self.preprocess)
        self.layer_ = self.layer or self.backbone_.spec.default_layer
        self.n_forward_ = 0
        return self

    def transform(self, X) -> np.ndarray:
        if not hasattr(self, "backbone_"):
            self.fit()
        paths = [str(Path(p)) for p in X]
        result = extract_features(paths, self.backbone_, [self.layer_], pooling=self.pooling, l2=self.l2,
                                  batch_size=self.batch_size, device=self.device, workers=self.workers,
                                  precision=self.precision, cache_dir=self.cache_dir, use_cache=self.use_cache,
                                  progress=self.progress)
        self.n_forward_ += result.n_forward
        if result.failures:
            listed = "; ".join(f"{p}: {r}" for p, r in result.failures[:3])
            raise DataError(f"{len(result.failures)} image(s) could not be read ({listed}); remove them from the "
                            "list or use extract_features(), which skips and reports them")
        features = result.features[self.layer_]
        self.n_features_out_ = features.shape[1]
        return features

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.array([f"{self.layer_}_{i}" for i in range(self.n_features_out_)], dtype=object)
