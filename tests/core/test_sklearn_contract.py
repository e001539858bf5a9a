"""scikit-learn's contract where transferlab claims it: FeatureExtractor and the probe Pipeline."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

from transferlab.features import FeatureExtractor, probe_pipeline


@pytest.fixture
def digits_paths(tmp_path):
    from transferlab.data import write_digits_folder

    folder = write_digits_folder(tmp_path / "digits", classes=[0, 1, 2], per_class=12)
    paths = sorted(str(p) for p in folder.rglob("*.png"))
    return paths, np.array([int(p.split("/")[-2]) for p in paths])


def test_transform_before_fit_is_not_fitted_and_fit_returns_self(digits_paths, tmp_path):
    paths, _ = digits_paths
    extractor = FeatureExtractor("digits_cnn", weights="none", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(NotFittedError):
        extractor.transform(paths[:2])
    assert extractor.fit(paths) is extractor and extractor.layer_ == "relu_fc2"
    assert extractor.transform(paths[:2]).shape == (2, 128)
    assert not hasattr(clone(extractor), "backbone_")


def test_grid_search_over_layer_and_pooling_reads_the_cache(digits_paths, tmp_path):
    paths, labels = digits_paths
    cache = str(tmp_path / "cache")
    pipe = probe_pipeline("digits_cnn", weights="none", cache_dir=cache)
    grid = {"features__layer": ["relu_fc2", "pool3"], "features__pooling": ["avg", "max"]}
    search = GridSearchCV(pipe, grid, cv=3).fit(paths, labels)
    assert len(search.cv_results_["params"]) == 4 and 0.0 <= search.best_score_ <= 1.0
    again = GridSearchCV(probe_pipeline("digits_cnn", weights="none", cache_dir=cache), grid, cv=3,
                         refit=False).fit(paths, labels)
    np.testing.assert_allclose(again.cv_results_["mean_test_score"], search.cv_results_["mean_test_score"])
    extractor = clone(pipe.named_steps["features"]).set_params(layer="pool3", pooling="max").fit(paths)
    extractor.transform(paths)
    assert extractor.n_forward_ == 0  # every (layer, pooling) the search used is memoised


def test_a_search_forwards_each_image_once_per_layer_and_pooling(digits_paths, tmp_path, monkeypatch):
    from transferlab.features import transformer

    monkeypatch.setattr(transformer, "_MEMO", transformer._RowMemo())
    calls = []
    real = transformer.extract_features

    def counting(paths, *args, **kwargs):
        result = real(paths, *args, **kwargs)
        calls.append(result.n_forward)
        return result

    monkeypatch.setattr(transformer, "extract_features", counting)
    paths, labels = digits_paths
    grid = {"features__layer": ["relu_fc2", "pool3"], "features__pooling": ["avg"]}
    GridSearchCV(probe_pipeline("digits_cnn", weights="none", use_cache=False), grid, cv=3).fit(paths, labels)
    assert sum(calls) == 2 * len(paths)  # 2 layers x 36 images, over 3 folds and the refit
