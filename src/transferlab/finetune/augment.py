"""Data-augmentation presets (torchvision transforms v2), for training images only.

* ``none``: the backbone's own evaluation preprocessing (resize + centre crop, or squash).
* ``light``: ``RandomResizedCrop(crop_size)`` + ``RandomHorizontalFlip(0.5)``.
* ``seed``: the exact list of report 001, section 1.6.3: ``RandomHorizontalFlip(0.5)``,
  ``RandomRotation(15)``, ``RandomResizedCrop(crop_size)``, ``ColorJitter(0.2, 0.2, 0.2)``,
  ``RandomPerspective(0.2, p=0.5)`` (the report used 224, i.e. the crop size of its weights).

Sizes, mean and std come from the backbone's :class:`~transferlab.backbones.Preprocessing`: there is
no literal here. Validation and test images always go through :func:`eval_transform`; the trainer
never hands an augmenting transform to them (tested).
"""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2

from ..backbones.spec import Preprocessing
from ..data.transforms import image_transform, normalize, pil_to_tensor
from ..errors import ConfigError, did_you_mean

AUGMENT_PRESETS = ("none", "light", "seed")


def augmentation(preset: str, pre: Preprocessing) -> Callable[[Image.Image], Image.Image] | None:
    """The random PIL -> PIL part of a preset (``None`` for ``none``); its output is ``crop_size`` square."""
    if preset not in AUGMENT_PRESETS:
        raise ConfigError(f"unknown --augment preset {preset!r}; expected one of {', '.join(AUGMENT_PRESETS)}."
                          f"{did_you_mean(preset, list(AUGMENT_PRESETS))}")
    if preset == "none":
        return None
    interpolation = InterpolationMode(pre.interpolation)
    crop = v2.RandomResizedCrop((pre.crop_size, pre.crop_size), interpolation=interpolation, antialias=True)
    if preset == "light":
        return v2.Compose([crop, v2.RandomHorizontalFlip(p=0.5)])
    return v2.Compose([  # report 001, section 1.6.3, in its order
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomRotation(15),
        crop,
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        v2.RandomPerspective(distortion_scale=0.2, p=0.5),
    ])


def eval_transform(pre: Preprocessing) -> Callable[[Image.Image], torch.Tensor]:
    """Deterministic preprocessing for validation, test and prediction (the backbone's own)."""
    return _Evaluation(pre)


def train_transform(pre: Preprocessing, preset: str) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> normalised tensor with the preset's augmentation (training images only).

    The augmenting presets end with a random resized crop to ``crop_size``, so they replace the
    deterministic resize + centre crop instead of running before it.
    """
    aug = augmentation(preset, pre)
    if aug is None:
        return eval_transform(pre)
    norm = normalize(pre)
    return _Augmented(aug, norm)


class _Evaluation:
    """:func:`transferlab.data.image_transform`, picklable for DataLoader workers started by spawn."""

    def __init__(self, pre: Preprocessing) -> None:
        self.pre, self._fn = pre, None

    def __getstate__(self) -> dict:
        return {"pre": self.pre, "_fn": None}

    def __call__(self, img: Image.Image) -> torch.Tensor:
        if self._fn is None:
            self._fn = image_transform(self.pre)
        return self._fn(img)


class _Augmented:
    """A picklable PIL -> tensor transform (DataLoader workers pickle it)."""

    def __init__(self, aug: Callable, norm: Callable) -> None:
        self.aug, self.norm = aug, norm

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return self.norm(pil_to_tensor(self.aug(img)))
