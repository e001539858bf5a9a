"""Fixtures of the fine-tuning tests: tiny generated folders (the root conftest pins one torch thread)."""

from __future__ import annotations

import pytest
from tests_helpers import make_color_folder


@pytest.fixture
def tiny_dir(tmp_path):
    """3 classes x 10 RGB 32x32 images (at test_fraction=0.25: 8 train incl. 2 validation, 2 test per class)."""
    return make_color_folder(tmp_path / "tiny", per_class=10, size=32)
