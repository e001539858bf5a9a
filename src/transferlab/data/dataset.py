"""A torch ``Dataset`` over image paths that never crashes on a bad file.

A file that fails to decode yields ``None``; :func:`collate_skipping` drops it from the batch and
returns the failure so the caller can report it (this works across DataLoader worker processes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from .decode import DEFAULT_MAX_PIXELS, ImageDecodeError, load_rgb


class ImagePathDataset(Dataset):
    """Items are ``(tensor, label, index)`` or ``(None, reason, index)`` for an unreadable file."""

    def __init__(self, paths: Sequence[Path | str], labels: Sequence[int] | None = None,
                 transform: Callable | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.paths = [Path(p) for p in paths]
        self.labels = list(labels) if labels is not None else [-1] * len(self.paths)
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            img = load_rgb(self.paths[index], self.max_pixels)
        except ImageDecodeError as exc:
            return None, str(exc), index
        x = self.transform(img) if self.transform is not None else img
        return x, self.labels[index], index


def collate_skipping(items):
    """Stack the good items; return ``(x, labels, indices, failures)`` with failures ``[(index, reason)]``."""
    good = [it for it in items if it[0] is not None]
    failures = [(it[2], it[1]) for it in items if it[0] is None]
    if not good:
        return None, None, None, failures
    x = torch.stack([it[0] for it in good])
    labels = torch.tensor([it[1] for it in good])
    indices = torch.tensor([it[2] for it in good])
    return x, labels, indices, failures
