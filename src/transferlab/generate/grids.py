"""Sample grids (PNG) and the animated GIF of their evolution over epochs.

torchvision's ``make_grid`` lays the images out; Pillow writes the GIF (no extra dependency).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .._utils import atomic_save


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, C, H, W)`` in [-1, 1] -> uint8 ``(N, H, W, C)``."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def grid_image(images: torch.Tensor, columns: int = 8, padding: int = 2) -> Image.Image:
    """One PIL image of ``images`` (in [-1, 1]) laid out ``columns`` per row."""
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=max(1, columns), padding=padding,
                     normalize=True, value_range=(-1, 1), pad_value=1.0)
    array = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    if images.shape[1] == 1:
        return Image.fromarray(array[:, :, 0], mode="L")
    return Image.fromarray(array, mode="RGB")


def save_grid(images: torch.Tensor, path: Path | str, columns: int = 8, scale: int = 2) -> Path:
    """Write a grid PNG (upscaled ``scale`` times with nearest neighbour so 32x32 digits stay visible)."""
    image = grid_image(images, columns)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path = Path(path)
    atomic_save(path, lambda tmp: image.save(tmp, format="PNG"))
    return path


def save_gif(frames: Sequence[Path | str], path: Path | str, duration_ms: int = 500) -> Path | None:
    """Animated GIF of PNG frames (in order), looping; ``None`` when there is no frame."""
    frames = [Path(f) for f in frames if Path(f).is_file()]
    if not frames:
        return None
    images = [Image.open(f).convert("RGB") for f in frames]
    first, rest = images[0], images[1:]
    path = Path(path)
    atomic_save(path, lambda tmp: first.save(tmp, format="GIF", save_all=True, append_images=rest,
                                             duration=duration_ms, loop=0))
    return path
