"""Data-augmentation presets (torchvision transforms v2), for training images only.

* ``none``: the backbone's own evaluation preprocessing (resize + centre crop, or squash).
* ``light``: ``RandomResizedCrop(crop_size)`` + ``RandomHorizontalFlip(0.5)``.
* ``seed``: the exact list of report 001, section 1.6.3: ``RandomHorizontalFlip(0.5)``,
  ``RandomRotation(15)``, ``RandomResizedCrop(crop_size)``, ``ColorJitter(0.2, 0.2, 0.2)``,
  ``RandomPerspective(0.2, p=0.5)`` (the report used 224, i.e. the crop size of its weights).

Blocks added to a preset with ``+`` (``seed+cutout``, ``light+noise+cutout``, ``none+noise``) act on the
``[0, 1]`` tensor after the preset, before the normalisation:

* ``noise``: ``GaussianNoise(sigma=0.1, clip=True)`` (torchvision's ``v2.GaussianNoise``);
* ``cutout``: ``RandomErasing(p=0.5, scale=(0.02, 0.2), value=mean)``, i.e. cutout (DeVries & Taylor 2017,
  "Improved regularization of convolutional neural networks with cutout"; Zhong et al. 2020, "Random
  erasing data augmentation") with the patch set to the weights' mean (0 after normalisation).

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
from ..data.transforms import image_transform, normalize, pil_to_tensor, resize_and_crop
from ..errors import ConfigError, did_you_mean

AUGMENT_PRESETS = ("none", "light", "seed")
AUGMENT_BLOCKS = ("noise", "cutout")
NOISE_SIGMA, CUTOUT_P, CUTOUT_SCALE = 0.1, 0.5, (0.02, 0.2)


def parse_augment(value: str) -> tuple[str, tuple[str, ...]]:
    """``"seed+cutout+noise"`` -> ``("seed", ("cutout", "noise"))``; raise ConfigError for an unknown part."""
    preset, *blocks = str(value).split("+")
    if preset not in AUGMENT_PRESETS:
        raise ConfigError(f"unknown --augment preset {preset!r}; expected one of {', '.join(AUGMENT_PRESETS)}, "
                          f"optionally followed by +{'/+'.join(AUGMENT_BLOCKS)} (e.g. seed+cutout)."
                          f"{did_you_mean(preset, list(AUGMENT_PRESETS))}")
    for block in blocks:
        if block not in AUGMENT_BLOCKS or blocks.count(block) > 1:
            raise ConfigError(f"--augment {value!r}: {block!r} is not a block or is repeated; blocks after the "
                              f"preset are {', '.join(AUGMENT_BLOCKS)}, each at most once (e.g. light+noise+cutout)."
                              f"{did_you_mean(block, list(AUGMENT_BLOCKS))}")
    return preset, tuple(blocks)


def tensor_blocks(blocks: tuple[str, ...], pre: Preprocessing) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The ``[0, 1]`` tensor -> tensor part of the blocks (``None`` without blocks), in the order given."""
    steps = []
    for block in blocks:
        if block == "noise":
            steps.append(v2.GaussianNoise(mean=0.0, sigma=NOISE_SIGMA, clip=True))
        else:
            mean = list(pre.mean)
            steps.append(v2.RandomErasing(p=CUTOUT_P, scale=CUTOUT_SCALE, value=mean if len(mean) > 1 else mean[0]))
    return v2.Compose(steps) if steps else None


def augmentation(preset: str, pre: Preprocessing) -> Callable[[Image.Image], Image.Image] | None:
    """The random PIL -> PIL part of a preset (``None`` for ``none``); its output is ``crop_size`` square.

    ``preset`` may carry ``+blocks``; only the preset's part is returned here (see :func:`tensor_blocks`)."""
    preset, _ = parse_augment(preset)
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
    aug, blocks = augmentation(preset, pre), tensor_blocks(parse_augment(preset)[1], pre)
    if aug is None and blocks is None:
        return eval_transform(pre)
    return _Augmented(aug if aug is not None else resize_and_crop(pre), normalize(pre), blocks, len(pre.mean))


def pixel_transform(pre: Preprocessing, preset: str) -> Callable[[Image.Image], torch.Tensor]:
    """As :func:`train_transform` but without the normalisation: a ``[0, 1]`` tensor (for previews)."""
    aug, blocks = augmentation(preset, pre), tensor_blocks(parse_augment(preset)[1], pre)
    return _Augmented(aug if aug is not None else resize_and_crop(pre), None, blocks, len(pre.mean))


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
    """A picklable PIL -> tensor transform (DataLoader workers pickle it): PIL augmentation, to the network's
    channels, tensor blocks, normalisation."""

    def __init__(self, aug: Callable, norm: Callable | None, blocks: Callable | None = None, channels: int = 3) -> None:
        self.aug, self.norm, self.blocks, self.channels = aug, norm, blocks, channels

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = self.aug(img)
        x = pil_to_tensor(img.convert("L") if self.channels == 1 else img)
        if self.blocks is not None:
            x = self.blocks(x)
        return x if self.norm is None else self.norm(x)
