"""Training images for the GANs, as ``(image in [-1, 1], label)`` pairs at 32x32.

* ``digits`` (offline default): scikit-learn's 1,797 handwritten digits upsampled to 32x32
  (:func:`transferlab.data.digits_arrays`), 1 channel, 10 classes;
* ``mnist``, ``cifar10``, ``celeba``: torchvision's loaders (``download=True`` fetches them into
  ``root`` when online; offline or without ``--download`` a clear :class:`DataError` says what to do).
  CelebA is conditioned on one binary attribute (``attribute="smiling"`` or an index: the report's
  ``id_att``), giving the classes ``not_<attr>`` / ``<attr>``;
* any image folder: class sub-folders give labels (conditional models possible); a flat folder of
  images is a single class (unconditional models only). A file that cannot be decoded is skipped during
  training and listed in the run's ``skipped.json`` (the dataset layer, :mod:`transferlab.data.sources`).

The seeds resize every dataset to 32x32 and normalise to [-1, 1] (the generator ends in Tanh).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset, TensorDataset

from ..data import ImagePathDataset
from ..data.sources import SkippableItems, TensorItems, dataset_root, digit_items
from ..errors import ConfigError, DataError, did_you_mean
from .dcgan import IMAGE_SIZE

BUILTIN = ("digits", "mnist", "cifar10", "celeba")

# The 40 columns of CelebA's list_attr_celeba.txt, in file order (index = the report's ``id_att``).
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)


@dataclass
class GanData:
    """Items ``(x, label, index)`` with ``x`` a float tensor ``(channels, 32, 32)`` in [-1, 1] (``x`` is None
    for an image that cannot be decoded: :mod:`transferlab.data.sources`)."""

    name: str
    dataset: Dataset
    channels: int
    classes: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list, repr=False)  # rejected by the folder scan

    def __len__(self) -> int:
        return len(self.dataset)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "images": len(self), "channels": self.channels, "classes": self.classes,
                **self.info}


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W)`` or ``(N, H, W, C)`` -> float ``(N, C, H, W)`` in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 127.5 - 1.0
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def digits_data(channels: int = 1) -> GanData:
    """scikit-learn's digits at 32x32 (the offline stand-in for MNIST), as items of the dataset layer."""
    if channels not in (1, 3):
        raise ConfigError(f"--channels must be 1 or 3; got {channels}")
    return GanData("digits", digit_items(IMAGE_SIZE, channels), channels, [str(d) for d in range(10)],
                   {"source": "sklearn.datasets.load_digits upsampled 8x8 -> 32x32"})


def _transform(channels: int) -> Callable[[Image.Image], torch.Tensor]:
    from torchvision.transforms import v2

    steps: list[Any] = [v2.Grayscale(1)] if channels == 1 else [v2.RGB()]
    steps += [v2.Resize(IMAGE_SIZE, antialias=True), v2.CenterCrop(IMAGE_SIZE), v2.PILToTensor(),
              v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * channels, [0.5] * channels)]
    return v2.Compose(steps)


def resolve_attribute(attribute: str | int) -> int:
    """CelebA attribute name (case-insensitive, e.g. ``smiling``) or index 0..39 -> index."""
    text = str(attribute).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(CELEBA_ATTRIBUTES):
            raise ConfigError(f"CelebA attribute index must be 0..{len(CELEBA_ATTRIBUTES) - 1}; got {index}")
        return index
    lowered = [a.lower() for a in CELEBA_ATTRIBUTES]
    if text.lower() not in lowered:
        raise ConfigError(f"unknown CelebA attribute {text!r}; expected a name of list_attr_celeba.txt "
                          f"(e.g. Smiling, Eyeglasses, Male) or an index 0..39."
                          + did_you_mean(text.lower(), lowered))
    return lowered.index(text.lower())


def _torchvision(name: str, root: Path, download: bool, channels: int, attribute: str | int | None,
                 split: str) -> GanData:
    from torchvision import datasets as tvd

    transform = _transform(channels)
    try:
        if name == "mnist":
            ds = tvd.MNIST(str(root), train=split == "train", transform=transform, download=download)
            classes = [str(d) for d in range(10)]
        elif name == "cifar10":
            ds = tvd.CIFAR10(str(root), train=split == "train", transform=transform, download=download)
            classes = list(ds.classes)
        else:
            index = resolve_attribute(attribute if attribute is not None else "Smiling")
            attr = CELEBA_ATTRIBUTES[index]
            ds = tvd.CelebA(str(root), split=split, target_type="attr", transform=transform, download=download,
                            target_transform=lambda target, i=index: int(target[i]))
            classes = [f"not_{attr}", attr]
    except (RuntimeError, OSError) as exc:  # missing files (RuntimeError) or no network (URLError is an OSError)
        how = ("the download failed (no network?): download it on a connected machine into that folder"
               if download else "pass --download to fetch it (needs network) or copy it there")
        raise DataError(f"{name} is not available under {root} ({exc.__class__.__name__}: {' '.join(str(exc).split())}); {how}, "
                        "or train offline on --data digits or an image folder") from exc
    info = {"root": str(root), "split": split}
    if name == "celeba":
        info["attribute"] = classes[1]
        info["attribute_index"] = CELEBA_ATTRIBUTES.index(classes[1])
    return GanData(name, SkippableItems(ds), channels, classes, info)


def folder_data(folder: Path | str, channels: int = 3) -> GanData:
    """Any image folder: class sub-folders give labels; loose images form one class ``images``."""
    from ..data import scan_class_folders, scan_images

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"--data {folder}: no such folder; expected one of {', '.join(BUILTIN)} or an image folder")
    by_class, skipped = scan_class_folders(folder)
    by_class = {c: p for c, p in by_class.items() if p}
    if by_class:
        classes = sorted(by_class)
        paths = [p for c in classes for p in by_class[c]]
        labels = [i for i, c in enumerate(classes) for _ in by_class[c]]
    else:
        paths, skipped = scan_images(folder)
        classes, labels = ["images"], [0] * len(paths)
    if not paths:
        raise DataError(f"no readable images in {folder} ({len(skipped)} files skipped); expected image files "
                        "or class sub-folders of images")
    return GanData(folder.name, ImagePathDataset(paths, labels, _transform(channels)), channels, classes,
                   {"root": str(folder), "skipped": len(skipped)}, [(str(p), str(r)) for p, r in skipped])


def default_root() -> Path:
    """The one dataset root (``$TRANSFERLAB_CACHE/datasets`` or the user cache directory)."""
    return dataset_root()


def load_gan_data(data: str | Path = "digits", *, channels: int | None = None, root: Path | str | None = None,
                  download: bool = False, attribute: str | int | None = None, split: str = "train",
                  max_images: int | None = None, seed: int = 0) -> GanData:
    """Load a GAN dataset by name (``digits|mnist|cifar10|celeba``) or image-folder path.

    ``channels`` defaults to the dataset's own (1 for digits and MNIST, 3 otherwise); ``max_images``
    keeps a seeded random subset (small budgets).
    """
    if channels is not None and channels not in (1, 3):
        raise ConfigError(f"--channels must be 1 or 3; got {channels}")
    name = str(data)
    if attribute is not None and name != "celeba":
        raise ConfigError(f"--attribute only applies to --data celeba; got --data {name}")
    if name == "digits":
        result = digits_data(channels or 1)
    elif name in BUILTIN:
        result = _torchvision(name, Path(root) if root else default_root(), download,
                              channels or (1 if name == "mnist" else 3), attribute, split)
    elif Path(name).expanduser().exists():
        result = folder_data(name, channels or 3)
    else:
        raise DataError(f"--data {name!r} is neither a dataset name ({', '.join(BUILTIN)}) nor an existing "
                        "folder." + did_you_mean(name, list(BUILTIN)))
    if max_images is not None:
        if max_images < 1:
            raise ConfigError(f"--max-images must be positive; got {max_images}")
        if max_images < len(result):
            keep = np.sort(np.random.default_rng(seed).permutation(len(result))[:max_images])
            result.dataset = Subset(result.dataset, keep.tolist())
            result.info["max_images"] = max_images
    return result


def labels_of(data: GanData) -> np.ndarray:
    """All labels of a dataset (fast path for in-memory tensors and torchvision's targets)."""
    ds, index = data.dataset, None
    if isinstance(ds, Subset):
        ds, index = ds.dataset, np.asarray(ds.indices)
    if isinstance(ds, SkippableItems):
        ds = ds.base
    if isinstance(ds, TensorItems):
        labels = ds.y.numpy()
    elif isinstance(ds, TensorDataset):
        labels = ds.tensors[1].numpy()
    elif isinstance(ds, ImagePathDataset):
        labels = np.asarray(ds.labels)
    elif hasattr(ds, "targets"):
        labels = np.asarray(ds.targets)
    elif hasattr(ds, "attr"):  # CelebA
        labels = np.asarray([ds.target_transform(row) for row in ds.attr])
    else:
        labels = np.asarray([int(ds[i][1]) for i in range(len(ds))])
    return labels if index is None else labels[index]
