"""Fixtures of the domain-adaptation tests: the offline digits -> blended-digits task in memory."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def digits_task():
    """scikit-learn digits (source) -> the same digits blended with photo patches (target), 28 px, in memory."""
    from transferlab.adapt import build_dann, digits_domain_data

    _, pre, _ = build_dann("ganin", 10)
    return digits_domain_data(pre, 28)


@pytest.fixture(scope="session")
def small_task(digits_task):
    """120 source / 120 target training images of the same task (for fast loop tests)."""
    from transferlab.adapt import DomainData, TensorItems

    def head(ds, n):
        return TensorItems(ds.x[:n].clone(), ds.y[:n].clone())

    d = digits_task
    return DomainData(d.classes, head(d.source_train, 120), head(d.source_test, 60), head(d.target_train, 120),
                      head(d.target_test, 60), True, {})


@pytest.fixture
def no_threads_leak():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
