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


def scattered_digits(size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Digits at a random scale (16-24 px), rotation (±15°) and position on a ``size`` canvas, plus noise.

    A harder version of the digits, closer to photos: the object is not aligned, so raw pixels are a weak
    representation and translation-tolerant features (convolutions + pooling) matter.
    """
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    out = np.zeros((len(digits.images), size, size), np.uint8)
    for i, small in enumerate(digits.images):
        glyph = Image.fromarray((small / 16.0 * 255).astype(np.uint8))
        side = int(rng.integers(16, 25))
        glyph = glyph.resize((side, side), Image.BILINEAR).rotate(float(rng.uniform(-15, 15)), Image.BILINEAR,
                                                                  expand=True)
        canvas = Image.new("L", (size, size))
        x, y = (int(rng.integers(0, max(1, size - glyph.width + 1))), int(rng.integers(0, max(1, size - glyph.height + 1))))
        canvas.paste(glyph, (x, y))
        noisy = np.asarray(canvas, np.float32) + rng.normal(0, 8, (size, size))
        out[i] = np.clip(noisy, 0, 255).astype(np.uint8)
    return out, digits.target.astype(np.int64)


def write_digits_folder(out: Path | str, classes: Iterable[int] | None = None, size: int = 32,
                        per_class: int | None = None, scattered: bool = False) -> Path:
    """Write digits as ``out/<digit>/<index>.png`` (grayscale). Existing complete folders are reused.

    ``scattered=True`` writes :func:`scattered_digits` instead of the centred ones.
    """
    out = Path(out)
    images, labels = scattered_digits(size) if scattered else digits_arrays(size)
    wanted = sorted(set(range(10) if classes is None else classes))
    marker = out / f".complete-{size}-{'-'.join(map(str, wanted))}-{per_class}-{'scattered' if scattered else 'centred'}"
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
