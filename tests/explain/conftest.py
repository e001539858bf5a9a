"""Fixtures of the explanation tests: a tiny classifier trained on generated data, skimage photos as PNGs."""

from __future__ import annotations

import pytest
import torch
from explain_helpers import color_batch, tiny_cnn, wrap
from torch import nn


@pytest.fixture(scope="session")
def trained():
    """A tiny CNN trained in the test on generated colour data (100 % train accuracy in ~1 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    net = tiny_cnn(seed=1)
    model = wrap(net)
    x, y = color_batch(20, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    net.train()
    for _ in range(60):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model.pixel_module(x), y)
        loss.backward()
        opt.step()
    net.eval()
    torch.set_num_threads(threads)
    return model


@pytest.fixture(scope="session")
def test_images(trained):
    """Held-out generated images the trained classifier gets right."""
    x, y = color_batch(4, seed=123)
    pred, _ = trained.predict(x)
    keep = pred == y
    assert keep.sum() >= 10, "the fixture classifier should classify most held-out images correctly"
    return x[keep], y[keep]


@pytest.fixture(scope="session")
def photos(tmp_path_factory):
    """scikit-image's bundled photos (chelsea, coffee, astronaut), downsized, saved as PNGs."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    paths = {}
    for name in ("chelsea", "coffee", "astronaut"):
        image = Image.fromarray(getattr(data, name)())
        image.thumbnail((72, 72))
        paths[name] = folder / f"{name}.png"
        image.save(paths[name])
    return paths
