"""Where the training images come from: an image folder or a torchvision dataset of the seeds.

An image folder goes through :func:`transferlab.data.load_split` (``DATA/train`` + ``DATA/test`` or one
folder split per class with a seed). ``--dataset flowers102|cifar10|mnist`` uses torchvision's own
loaders with ``download=True`` (report 004 trains on Oxford Flowers-102); offline, a missing dataset
raises :class:`DataError` saying where to put the files. Flowers-102 keeps its own three splits
(torchvision's ``Flowers102(split="train"|"val"|"test")``, 10 + 10 images per class and 6,149 test
images): ``train`` trains, ``val`` is the validation set (best epoch, early stopping; nothing is carved
from ``train``), ``test`` is evaluated once at the end. CIFAR-10 and MNIST have no validation split: the
trainer carves one from their training set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from PIL import Image
from torch.utils.data import Dataset

from ..data import ImageDecodeError, load_rgb, load_split
from ..data.sources import dataset_root
from ..errors import ConfigError, DataError, did_you_mean

TORCHVISION_DATASETS = ("flowers102", "cifar10", "mnist")


@dataclass
class TrainingData:
    """Classes plus train and test items ``(ref, label)``; ``ref`` is a path or ``(split, index)``.

    ``val`` holds the dataset's own validation items (Flowers-102); ``None``: the trainer carves a
    validation split from ``train``."""

    name: str
    classes: list[str]
    train: list[tuple[Any, int]]
    test: list[tuple[Any, int]]
    root: Path | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sets: dict[str, Any] = field(default_factory=dict, repr=False)
    val: list[tuple[Any, int]] | None = None

    def load(self, ref: Any) -> Image.Image:
        """Decode one item to an RGB PIL image (raises ImageDecodeError for a bad file)."""
        if isinstance(ref, Path):
            return load_rgb(ref)
        split, index = ref
        return self.sets[split][index][0].convert("RGB")

    def describe(self, ref: Any) -> str:
        return str(ref) if isinstance(ref, Path) else f"{self.name}/{ref[0]}/{ref[1]}"

    def summary(self) -> dict:
        return {"name": self.name, "root": str(self.root) if self.root else None, "classes": self.classes,
                "n_train": len(self.train), "n_test": len(self.test), "n_skipped": len(self.skipped),
                "n_val": None if self.val is None else len(self.val),
                "validation": "the dataset's own split" if self.val is not None else "carved from train"}

    def splits(self) -> dict[str, list[tuple[Any, int]]]:
        """``{"train": ..., "val": ... (when the dataset has its own), "test": ...}``."""
        return {"train": self.train, **({"val": self.val} if self.val is not None else {}), "test": self.test}


def folder_data(root: Path | str, *, train_per_class: int | None = 100, test_fraction: float | None = None,
                seed: int = 0) -> TrainingData:
    """An image folder, split exactly as ``transferlab run`` splits it (same seed, same split)."""
    split = load_split(root, train_per_class=train_per_class, test_fraction=test_fraction, seed=seed)
    return TrainingData(name=Path(root).name, classes=list(split.classes),
                        train=[(s.path, s.label) for s in split.train], test=[(s.path, s.label) for s in split.test],
                        root=split.root, skipped=list(split.skipped))


def default_data_root() -> Path:
    """Where torchvision datasets are downloaded by default: the one dataset root (``$TRANSFERLAB_CACHE``)."""
    return dataset_root()


def torchvision_data(name: str, root: Path | str | None = None, download: bool = True) -> TrainingData:
    """Flowers-102, CIFAR-10 or MNIST through torchvision (downloaded into ``root`` when missing)."""
    if name not in TORCHVISION_DATASETS:
        raise DataError(f"unknown --dataset {name!r}; expected one of {', '.join(TORCHVISION_DATASETS)}."
                        f"{did_you_mean(name, list(TORCHVISION_DATASETS))} For other data pass an image folder")
    import torchvision.datasets as tvd

    root = Path(root).expanduser() if root is not None else default_data_root()
    root.mkdir(parents=True, exist_ok=True)
    try:
        if name == "flowers102":
            sets = {s: tvd.Flowers102(root, split=s, download=download) for s in ("train", "val", "test")}
            classes = list(tvd.Flowers102.classes)
        elif name == "cifar10":
            sets = {"train": tvd.CIFAR10(root, train=True, download=download),
                    "test": tvd.CIFAR10(root, train=False, download=download)}
            classes = list(sets["train"].classes)
        else:
            sets = {"train": tvd.MNIST(root, train=True, download=download),
                    "test": tvd.MNIST(root, train=False, download=download)}
            classes = list(sets["train"].classes)
    except Exception as exc:  # offline: URLError/OSError; missing files without download: RuntimeError
        raise DataError(
            f"dataset {name} is not in {root} and could not be downloaded ({exc.__class__.__name__}: "
            f"{' '.join(str(exc).split())}); "
            f"connect once to download it there, or pass --data-root to a folder that holds torchvision's "
            f"{name} files, or use an image folder instead"
        ) from exc
    items = {part: [((part, i), int(label)) for i, label in enumerate(_labels(ds))] for part, ds in sets.items()}
    return TrainingData(name=name, classes=classes, train=items["train"], test=items["test"], root=root, sets=sets,
                        val=items.get("val"))


def _labels(ds: Any) -> Sequence[int]:
    for attr in ("targets", "_labels"):  # CIFAR/MNIST keep `targets`, Flowers102 `_labels`
        if hasattr(ds, attr):
            return [int(v) for v in getattr(ds, attr)]
    return [int(ds[i][1]) for i in range(len(ds))]


def load_data(data: Path | str | TrainingData | None, cfg, dataset: str | None = None,
              data_root: Path | str | None = None) -> TrainingData:
    """An image folder (``data``) or a torchvision dataset (``dataset``), exactly one of them.

    ``cfg`` supplies the folder split (``train_per_class``, ``test_fraction``, ``data_seed``)."""
    if isinstance(data, TrainingData):
        return data
    if (data is None) == (dataset is None):
        raise ConfigError("give either an image folder DATA or --dataset flowers102|cifar10|mnist (exactly one)")
    if dataset is not None:
        return torchvision_data(dataset, data_root)
    return folder_data(data, train_per_class=cfg.train_per_class, test_fraction=cfg.test_fraction,
                       seed=cfg.data_seed)


class ItemDataset(Dataset):
    """Items ``(tensor, label, position)`` or ``(None, reason, position)``; use with ``collate_skipping``."""

    def __init__(self, data: TrainingData, items: Sequence[tuple[Any, int]], transform) -> None:
        self.data, self.items, self.transform = data, list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int):
        ref, label = self.items[position]
        try:
            img = self.data.load(ref)
        except ImageDecodeError as exc:
            return None, str(exc), position
        return self.transform(img), label, position
