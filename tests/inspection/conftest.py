"""Fixtures of the inspection tests: skimage's photos saved as PNG files."""

from __future__ import annotations

import pytest
from PIL import Image


@pytest.fixture(scope="session")
def photos(tmp_path_factory):
    """``chelsea.png`` (the cat, 451x300) and ``coffee.png`` (400x600) from scikit-image."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in ("chelsea", "coffee"):
        path = folder / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(path)
        paths.append(path)
    return paths
