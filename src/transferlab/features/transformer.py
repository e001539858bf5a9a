"""``FeatureExtractor``: the extraction as a scikit-learn transformer (image paths in, vectors out).

Follows scikit-learn's conventions (``__init__`` only stores, validation in ``fit``, learned attributes
end in ``_``, ``transform`` before ``fit`` raises ``NotFittedError``), so
``Pipeline([("features", FeatureExtractor()), ("svm", LinearSVC())])`` (:func:`probe_pipeline`), ``clone``
and ``GridSearchCV`` over ``features__layer`` or ``features__pooling`` work. Cross-validation transforms a
different subset of images in every fold, which the on-disk cache (keyed by the exact image list) cannot
serve, so the transformer also keeps the rows it computed in memory, keyed by each image's content hash
and everything that determines its features (:class:`_RowMemo`, bounded): a search forwards each image
once per (layer, pooling), whatever the folds. ``transform`` refuses a list
with unreadable images (a pipeline cannot drop rows); use :func:`~transferlab.features.extract_features`
to skip and report them instead.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .._utils import file_digest, text_digest
from ..backbones import load_backbone
from ..errors import DataError
from .extract import _description, extract_features

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


class _RowMemo:
    """Feature rows by (description, image digest), least recently used dropped past ``max_bytes``.

    A memo of pure results: what comes back is exactly what extraction would compute again."""

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes, self.bytes, self.rows = max_bytes, 0, OrderedDict()

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        row = self.rows.get(key)
        if row is not None:
            self.rows.move_to_end(key)
        return row

    def put(self, key: tuple[str, str], row: np.ndarray) -> None:
        if key not in self.rows:
            self.rows[key] = row
            self.bytes += row.nbytes
        while self.bytes > self.max_bytes and self.rows:
            self.bytes -= self.rows.popitem(last=False)[1].nbytes


_MEMO = _RowMemo()


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """Image paths -> feature vectors of ``backbone`` at ``layer`` (Chatfield et al. 2014)."""

    def __init__(self, backbone: str = "vgg16", layer: str | None = None, weights: str = "imagenet",
                 preprocess: str = "weights", pooling: str = "none", l2: bool = True, batch_size: int | None = None,
                 device: str = "auto", workers: int | None = 0, precision: str = "fp32",
                 cache_dir: str | None = None, use_cache: bool = True, seed: int = 0, progress: bool = False,
                 engine: str = "torch"):
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
        self.engine = engine

    def fit(self, X=None, y=None):
        """Build the backbone (no learning happens: the network is fixed)."""
        self.backbone_ = load_backbone(self.backbone, self.weights, seed=self.seed,
                                       preprocessing_mode=self.preprocess)
        self.layer_ = self.layer or self.backbone_.spec.default_layer
        self.n_forward_ = 0
        return self

    def transform(self, X) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "backbone_")
        paths = [str(Path(p)) for p in X]
        if not paths:
            raise DataError("no images to transform; pass at least one image path")
        described = text_digest(_description(self.backbone_, self.layer_, self.pooling, self.l2, self.precision,
                                              self.engine))
        keys = [(described, file_digest(Path(p))) for p in paths]
        missing = list(dict.fromkeys(p for p, key in zip(paths, keys) if _MEMO.get(key) is None))
        if missing:
            result = extract_features(missing, self.backbone_, [self.layer_], pooling=self.pooling, l2=self.l2,
                                      batch_size=self.batch_size, device=self.device, workers=self.workers,
                                      precision=self.precision, cache_dir=self.cache_dir, use_cache=self.use_cache,
                                      progress=self.progress, engine=self.engine)
            self.n_forward_ += result.n_forward
            if result.failures:
                listed = "; ".join(f"{p}: {r}" for p, r in result.failures[:3])
                raise DataError(f"{len(result.failures)} image(s) could not be read ({listed}); remove them from "
                                "the list or use extract_features(), which skips and reports them")
            for index, row in zip(result.kept, result.features[self.layer_]):
                _MEMO.put((described, file_digest(Path(missing[index]))), row)
        features = np.stack([_MEMO.get(key) for key in keys])
        self.n_features_out_ = features.shape[1]
        return features

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.array([f"{self.layer_}_{i}" for i in range(self.n_features_out_)], dtype=object)


def probe_pipeline(backbone: str = "vgg16", layer: str | None = None, *, C: float = 1.0, kind: str = "svm",
                   pca: int | None = None, seed: int = 0, **extractor) -> Pipeline:
    """The assignment's classifier as one scikit-learn ``Pipeline``: ``features`` (this transformer) then
    the linear classifier of :func:`transferlab.classify.make_classifier` (one-vs-rest ``LinearSVC(C)`` by
    default, optional PCA). ``extractor`` holds the other :class:`FeatureExtractor` parameters."""
    from sklearn.pipeline import Pipeline

    from ..classify.probe import make_classifier

    features = FeatureExtractor(backbone, layer, seed=seed, **extractor)
    return Pipeline([("features", features), ("classifier", make_classifier(kind, C, pca=pca, seed=seed))])
