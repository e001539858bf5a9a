"""Fixtures of the study tests: a tiny 4-class digits folder and digits_cnn (random weights) options."""

from __future__ import annotations

import pytest

from transferlab.classify import LinearOptions
from transferlab.pipeline import ExtractionOptions


@pytest.fixture(scope="session")
def tiny_digits(tmp_path_factory):
    """4 digit classes x 12 grayscale 32x32 PNGs (6 train + 6 test per class with train_per_class=6)."""
    from transferlab.data import write_digits_folder

    return write_digits_folder(tmp_path_factory.mktemp("tiny_digits"), classes=[0, 1, 2, 3], per_class=12)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("study_cache")


@pytest.fixture
def make_options(shared_cache):
    def make(cache_dir=None, **changes) -> ExtractionOptions:
        options = dict(backbone="digits_cnn", weights="none", train_per_class=6, pooling="avg", workers=0,
                       cache_dir=cache_dir or shared_cache, progress=False, batch_size=64)
        options.update(changes)
        return ExtractionOptions(**options)

    return make


@pytest.fixture
def linear():
    return LinearOptions(cv_folds=3)
