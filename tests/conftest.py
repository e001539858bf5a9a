"""Shared fixtures: offline settings, small generated image folders."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm would try the hub for ~46 s otherwise
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

# One thread per test process: the tests' networks are tiny (one thread is fastest for them), and under
# pytest-xdist two workers x two threads on 2 cores thrash (measured up to 50x slower on a busy machine).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """scikit-learn digits as 32x32 grayscale class folders (10 classes, ~180 images each)."""
    from transferlab.data import write_digits_folder

    return write_digits_folder(tmp_path_factory.mktemp("digits"))


from tests_helpers import make_color_folder  # noqa: E402


@pytest.fixture
def color_dir(tmp_path):
    """3 classes x 12 RGB 40x40 PNGs in class folders."""
    return make_color_folder(tmp_path / "colors")
