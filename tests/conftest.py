"""Shared fixtures: offline settings, small generated image folders."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm would try the hub for ~46 s otherwise
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """scikit-learn digits as 32x32 grayscale class folders (10 classes, ~180 images each)."""
    from transferlab.data import write_digits_folder

    return write_digits_folder(tmp_path_factory.mktemp("digits"))


def make_color_folder(root, classes=("red", "green", "blue"), per_class=12, size=40, seed=0):
    """A tiny, easily separable RGB dataset: noisy images tinted by class."""
    rng = np.random.default_rng(seed)
    tints = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200),
             "yellow": (200, 200, 40), "gray": (120, 120, 120)}
    for c_index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        tint = np.array(tints.get(name, (40 * c_index % 255, 90, 160)), dtype=np.float32)
        for i in range(per_class):
            noise = rng.normal(0, 30, size=(size, size, 3))
            image = np.clip(tint + noise, 0, 255).astype(np.uint8)
            Image.fromarray(image).save(folder / f"{name}_{i:03d}.png")
    return root


@pytest.fixture
def color_dir(tmp_path):
    """3 classes x 12 RGB 40x40 PNGs in class folders."""
    return make_color_folder(tmp_path / "colors")
