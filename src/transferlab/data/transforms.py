"""Images to tensors with the backbone's own preprocessing (see :class:`~transferlab.backbones.Preprocessing`)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2

from ..backbones.spec import Preprocessing
from ..errors import ConfigError


def normalize(pre: Preprocessing) -> v2.Normalize:
    return v2.Normalize(mean=list(pre.mean), std=list(pre.std))


def resize_and_crop(pre: Preprocessing) -> Callable[[Image.Image], Image.Image]:
    """The geometric part of the preprocessing, PIL in, PIL out."""
    if pre.mode == "squash":
        size = pre.crop_size
        return lambda img: img.resize((size, size), Image.BILINEAR)  # the assignment's exact resize
    if pre.mode == "weights":
        if pre.crop_mode not in ("center", "squash"):
            raise ConfigError(f"crop mode {pre.crop_mode!r} of these weights is not supported; expected center or "
                              "squash. Pass --preprocess squash to resize whole images instead")
        resize = pre.resize_size if pre.crop_mode == "center" else (pre.resize_size, pre.resize_size)
        return v2.Compose([v2.Resize(resize, interpolation=InterpolationMode(pre.interpolation), antialias=True),
                           v2.CenterCrop(pre.crop_size)])
    raise ConfigError(f"unknown preprocessing mode {pre.mode!r}; expected weights or squash")


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit RGB (or gray ``L``) PIL image -> float tensor (3, H, W) (or (1, H, W)) in [0, 1]."""
    array = np.asarray(img, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def to_channels(img: Image.Image, pre: Preprocessing) -> Image.Image:
    """The image in the mode the network takes: ``L`` for a 1-channel preprocessing (``--grayscale
    sum-filters|learnt``), RGB otherwise."""
    return img.convert("L") if len(pre.mean) == 1 else img


def image_transform(pre: Preprocessing, augment: Callable | None = None) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> normalised tensor; ``augment`` (PIL -> PIL) runs before the resize/crop."""
    geometry, norm = resize_and_crop(pre), normalize(pre)

    def transform(img: Image.Image) -> torch.Tensor:
        if augment is not None:
            img = augment(img)
        return norm(pil_to_tensor(to_channels(geometry(img), pre)))

    return transform


def denormalize(x: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """Inverse of the normalisation: back to [0, 1] pixel space (for figures and pixel-space attacks)."""
    mean = torch.tensor(pre.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.tensor(pre.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return x * std + mean
