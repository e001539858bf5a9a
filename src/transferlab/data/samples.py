"""Offline sample datasets built from what ships inside the dependencies.

scikit-learn's bundled handwritten digits (1,797 images of 8x8 pixels, 10 classes) are upsampled to
32x32 and written as grayscale PNG class folders. They stand in for 15 Scene / MNIST when no dataset can
be downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image


def digits_arrays(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 images ``(N, size, size)`` (white digit on black) and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).clip(0, 255).astype(np.uint8)
    if size != 8:
        images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])
    return images, digits.target.astype(np.int64)


def write_digits_folder(out: Path | str, classes: Iterable[int] | None = None, size: int = 32,
                        per_class: int | None = None) -> Path:
    """Write digits as ``out/<digit>/<index>.png`` (grayscale). Existing complete folders are reused."""
    out = Path(out)
    images, labels = digits_arrays(size)
    wanted = sorted(set(range(10) if classes is None else classes))
    marker = out / f".complete-{size}-{'-'.join(map(str, wanted))}-{per_class}"
    if marker.exists():
        return out
    for digit in wanted:
        folder = out / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        for count, index in enumerate(np.flatnonzero(labels == digit)):
            if per_class is not None and count >= per_class:
                break
            Image.fromarray(images[index], mode="L").save(folder / f"{index:04d}.png")
    marker.touch()
    return out
