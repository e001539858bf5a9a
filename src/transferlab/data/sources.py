"""One dataset layer: skippable items from image folders, torchvision datasets and the named digit sets; one root.

Every item is ``(x, label, index)``, or ``(None, reason, index)`` when it cannot be decoded, so every
training loop batches with :func:`~transferlab.data.collate_skipping`, skips the bad item and reports
it instead of stopping. :func:`dataset_root` is where downloaded and generated datasets live:
``$TRANSFERLAB_CACHE/datasets`` (the variable the feature cache honours), else the user cache directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ..errors import DataError
from .dataset import ImagePathDataset


def dataset_root(root: Path | str | None = None) -> Path:
    """``root`` when given, else ``$TRANSFERLAB_CACHE/datasets``, else ``<user cache>/transferlab/datasets``."""
    if root is not None:
        return Path(root).expanduser()
    from platformdirs import user_cache_dir

    return Path(os.environ.get("TRANSFERLAB_CACHE") or user_cache_dir("transferlab")).expanduser() / "datasets"


class TensorItems(Dataset):
    """In-memory images (e.g. the named digit sets) and labels as ``(x, label, index)`` items (label -1: unknown)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        self.x = x
        self.y = y if y is not None else torch.full((len(x),), -1, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        return self.x[index], int(self.y[index]), index


def digit_items(size: int = 32, channels: int = 1) -> TensorItems:
    """scikit-learn's digits at ``size`` px scaled to [-1, 1], ``channels`` 1 or 3, as items."""
    from .samples import digits_arrays

    images, labels = digits_arrays(size)
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div(127.5).sub(1.0).unsqueeze(1)
    return TensorItems(x.repeat(1, channels, 1, 1) if channels != 1 else x, torch.from_numpy(labels))


class SkippableItems(Dataset):
    """Any dataset as skippable items: ``(x, y)`` pairs (torchvision) become ``(x, y, index)``; an item whose
    image cannot be decoded (a truncated or garbage file) becomes ``(None, reason, index)``."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        try:
            item = self.base[index]
        except (DataError, OSError, SyntaxError, ValueError) as exc:  # PIL's errors for broken files
            return None, f"{describe_item(self.base, index)}: {exc.__class__.__name__}: {exc}", index
        if len(item) == 3:
            return item if item[0] is not None else (None, item[1], index)
        return item[0], int(item[1]), index


def as_items(dataset: Dataset) -> Dataset:
    """``dataset`` as skippable items (unchanged when it already is one)."""
    return dataset if isinstance(dataset, (SkippableItems, TensorItems, ImagePathDataset)) else SkippableItems(dataset)


def describe_item(dataset: Any, index: int) -> str:
    """The file behind item ``index`` where there is one (through ``Subset`` and :class:`SkippableItems`)."""
    while True:
        if isinstance(dataset, SkippableItems):
            dataset = dataset.base
        elif isinstance(dataset, Subset):
            dataset, index = dataset.dataset, int(dataset.indices[index])
        else:
            break
    if isinstance(dataset, ImagePathDataset):
        return str(dataset.paths[index])
    for attr in ("imgs", "samples", "_image_files"):  # torchvision ImageFolder / Flowers102
        files = getattr(dataset, attr, None)
        if files is not None:
            entry = files[index]
            return str(entry[0] if isinstance(entry, tuple) else entry)
    return f"{type(dataset).__name__}[{index}]"


__all__ = ["SkippableItems", "TensorItems", "as_items", "dataset_root", "describe_item", "digit_items"]
