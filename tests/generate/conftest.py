"""Small shared pieces for the GAN tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def digits_gan():
    """scikit-learn digits as GAN data (1,797 images, 1 x 32 x 32 in [-1, 1], 10 classes)."""
    from transferlab.generate import load_gan_data

    return load_gan_data("digits")


@pytest.fixture(scope="session")
def small_digits():
    """A seeded 160-image subset of the digits (tiny training budgets)."""
    from transferlab.generate import load_gan_data

    return load_gan_data("digits", max_images=160, seed=0)
