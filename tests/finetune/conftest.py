"""Fixtures of the fine-tuning tests: one torch thread (2 shared cores), tiny generated folders."""

from __future__ import annotations

import pytest
import torch
from tests_helpers import make_color_folder


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run fastest on one thread; two threads on busy shared cores spin-wait (measured ~50x)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_dir(tmp_path):
    """3 classes x 10 RGB 32x32 images (at test_fraction=0.25: 8 train incl. 2 validation, 2 test per class)."""
    return make_color_folder(tmp_path / "tiny", per_class=10, size=32)
