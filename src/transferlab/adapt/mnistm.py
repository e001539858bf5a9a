"""MNIST-M and its offline analogue: digits blended with colour photo patches.

The recipe is Ganin & Lempitsky (2015, section 5.1, "MNIST -> MNIST-M"): each digit is binarised and
combined with a random patch of a random colour photo by the absolute difference ``|patch - digit|``
per channel, so strokes take the inverted colours of the patch. The paper takes the patches from
the BSDS500 photos (as the widely used ``create_mnistm.py`` script does, with seed 42).

* Real: MNIST through ``torchvision.datasets.MNIST`` and BSDS500 through torchvision's download
  helper. Without network (and no local copy) both fail with a :class:`~transferlab.errors.DataError`
  saying what to do.
* Offline analogue: scikit-learn's bundled digits (source, ``digits``) and the same recipe applied to
  them with patches of scikit-image's bundled colour photos and colour-tinted textures (target,
  ``digits-m``).
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import DataError

BSDS500_URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"
#: scikit-image images that ship inside the package (no download): colour photos and gray textures.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SKIMAGE_TEXTURES = ("brick", "grass", "gravel")


def blend_digits(digits: np.ndarray, photos: Sequence[np.ndarray], seed: int = 42,
                 threshold: int = 0) -> np.ndarray:
    """Apply the MNIST-M recipe to gray digits ``(N, H, W)`` uint8; return RGB ``(N, H, W, 3)`` uint8.

    Each digit is binarised (``pixel > threshold`` -> 255, else 0; MNIST uses 0) and blended as
    ``|patch - digit|`` with a random ``H x W`` patch of a random photo (uint8 ``(h, w, 3)``, h, w >= H, W).
    """
    digits = np.asarray(digits)
    if digits.ndim != 3:
        raise DataError(f"digits must be a (N, H, W) array of gray images; got shape {digits.shape}")
    if not photos:
        raise DataError("no photos to take patches from; pass at least one colour image")
    n, h, w = digits.shape
    for i, photo in enumerate(photos):
        if photo.ndim != 3 or photo.shape[2] != 3 or photo.shape[0] < h or photo.shape[1] < w:
            raise DataError(f"photo {i} has shape {photo.shape}; expected (h, w, 3) with h >= {h} and w >= {w}")
    rng = np.random.RandomState(seed)  # the legacy generator of the original script
    strokes = (digits > threshold).astype(np.int16) * 255
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for k in range(n):
        photo = photos[rng.randint(0, len(photos))]
        y = rng.randint(0, photo.shape[0] - h + 1)
        x = rng.randint(0, photo.shape[1] - w + 1)
        patch = photo[y:y + h, x:x + w].astype(np.int16)
        out[k] = np.abs(patch - strokes[k][:, :, None]).astype(np.uint8)
    return out


def skimage_photos(seed: int = 0) -> list[np.ndarray]:
    """scikit-image's bundled colour photos plus its gray textures tinted with random colours (offline)."""
    import skimage.data

    photos = [np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]) for name in SKIMAGE_PHOTOS]
    rng = np.random.default_rng(seed)
    for name in SKIMAGE_TEXTURES:
        gray = getattr(skimage.data, name)().astype(np.float32) / 255.0
        for _ in range(2):
            low, high = rng.uniform(0, 255, size=3), rng.uniform(0, 255, size=3)
            photos.append((low + gray[..., None] * (high - low)).clip(0, 255).astype(np.uint8))
    return photos


def digits_domains(size: int = 28, test_fraction: float = 0.3, seed: int = 0, threshold: int = 127
                   ) -> dict[str, dict[str, np.ndarray]]:
    """The offline task in memory: ``{"digits": ..., "digits-m": ...}``, each with x/y train and test.

    ``digits`` are scikit-learn's 1,797 digits upsampled to ``size`` as gray uint8 ``(N, size, size)``;
    ``digits-m`` are the *same* images blended with skimage photo patches (RGB ``(N, size, size, 3)``),
    as MNIST-M is MNIST blended. The stratified train/test split is shared by both domains.
    """
    from sklearn.model_selection import train_test_split

    from ..data import digits_arrays

    images, labels = digits_arrays(size)
    blended = blend_digits(images, skimage_photos(), seed=42, threshold=threshold)
    train, test = train_test_split(np.arange(len(labels)), test_size=test_fraction, random_state=seed,
                                   stratify=labels)
    train, test = np.sort(train), np.sort(test)
    return {name: {"x_train": arr[train], "y_train": labels[train], "x_test": arr[test], "y_test": labels[test]}
            for name, arr in (("digits", images), ("digits-m", blended))}


def load_mnist(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """MNIST through torchvision (downloaded into ``root`` once); a clear DataError offline."""
    from torchvision.datasets import MNIST

    try:
        data = MNIST(str(root), train=train, download=True)
    except Exception as exc:  # URLError, HTTPError, RuntimeError("Error downloading ...")
        raise DataError(
            f"MNIST is not in {root} and could not be downloaded ({exc.__class__.__name__}); connect once so "
            f"torchvision can download it there, or use the offline analogue --source digits --target digits-m"
        ) from exc
    return data.data.numpy(), data.targets.numpy().astype(np.int64)


def load_bsds500_photos(root: Path, limit: int | None = None) -> list[np.ndarray]:
    """The BSDS500 training photos (the patches of MNIST-M), downloaded into ``root`` once."""
    folder = Path(root) / "BSR" / "BSDS500" / "data" / "images" / "train"
    if not folder.is_dir():
        from torchvision.datasets.utils import download_url

        try:
            download_url(BSDS500_URL, str(root), filename="BSR_bsds500.tgz")
            with tarfile.open(Path(root) / "BSR_bsds500.tgz") as archive:
                archive.extractall(root, filter="data")
        except Exception as exc:
            raise DataError(
                f"the BSDS500 photos used to build MNIST-M are not in {folder} and could not be downloaded from "
                f"{BSDS500_URL} ({exc.__class__.__name__}); connect once, or pass --photos DIR with your own "
                "colour photos, or use the offline analogue --target digits-m"
            ) from exc
    return load_photo_folder(folder, limit)


def load_photo_folder(folder: Path, limit: int | None = None) -> list[np.ndarray]:
    """Every readable image of ``folder`` as RGB uint8 arrays (patches for :func:`blend_digits`)."""
    from ..data import load_rgb, scan_images

    paths, _ = scan_images(Path(folder))
    if not paths:
        raise DataError(f"no readable image in photo folder {folder}; expected colour photos (.jpg/.png)")
    return [np.asarray(load_rgb(p)) for p in paths[:limit]]


def write_image_folder(out: Path, images: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> None:
    """Write ``images`` as ``out/<class>/<index>.png`` (gray or RGB uint8)."""
    for name in classes:
        (out / name).mkdir(parents=True, exist_ok=True)
    for index, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(out / classes[int(label)] / f"{index:05d}.png")
