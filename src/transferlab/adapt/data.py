"""Source and target domains as datasets: named tasks (``digits``, ``digits-m``, ``mnist``, ``mnist-m``)
or image folders, checked to share one class set.

Every item is ``(tensor, label, index)`` (label ``-1`` when unknown; ``None`` and a reason for a file that
cannot be decoded): the dataset layer of :mod:`transferlab.data.sources`, so the loops use one collate
function, :func:`~transferlab.data.collate_skipping`, for in-memory tensors and image files alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .._utils import text_digest, write_json
from ..backbones import Preprocessing
from ..data import ImagePathDataset, image_transform, load_split, scan_images
from ..data.sources import TensorItems, dataset_root
from ..errors import DataError, did_you_mean
from . import mnistm

DIGIT_CLASSES = [str(d) for d in range(10)]


@dataclass
class DomainData:
    """What a domain-adaptation run trains and evaluates on. Target labels serve evaluation only."""

    classes: list[str]
    source_train: Dataset
    source_test: Dataset
    target_train: Dataset
    target_test: Dataset
    target_labelled: bool = True
    info: dict = field(default_factory=dict)

    def fingerprint(self) -> dict:
        """What a resumed run must find again (JSON-able): the source and target (names, or resolved folders),
        the test fraction when a split used it, the classes, and a digest of each of the four splits."""
        def identity(key: str) -> str | None:  # a folder resolved (the same folder from another cwd), or a name
            value = self.info.get(key)
            if value is None or self.info.get("in_memory") or not Path(value).expanduser().is_dir():
                return value
            return str(Path(value).expanduser().resolve())

        return {"source": identity("source"), "target": identity("target"),
                "test_fraction": self.info.get("test_fraction"), "classes": list(self.classes),
                "target_labelled": self.target_labelled,
                **{name: dataset_digest(getattr(self, name))
                   for name in ("source_train", "source_test", "target_train", "target_test")}}


def dataset_digest(dataset: Dataset) -> str:
    """A digest of what ``dataset`` holds, in order: the bytes of in-memory tensors and labels
    (:class:`TensorItems`), the resolved file paths and labels of image files (``ImagePathDataset``,
    file contents are not read), or for other datasets only their type and length."""
    h = hashlib.blake2b(digest_size=16)
    if isinstance(dataset, TensorItems):
        for tensor in (dataset.x, dataset.y):
            t = tensor.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    elif isinstance(dataset, ImagePathDataset):
        h.update(text_digest([str(p.expanduser().resolve()) for p in dataset.paths], list(dataset.labels)).encode())
    else:
        h.update(f"{type(dataset).__module__}.{type(dataset).__qualname__}:{len(dataset)}".encode())
    return h.hexdigest()


def arrays_to_tensor(images: np.ndarray, pre: Preprocessing) -> torch.Tensor:
    """uint8 ``(N, H, W)`` or ``(N, H, W, 3)`` -> normalised float ``(N, 3, S, S)`` at the crop size."""
    x = torch.from_numpy(np.asarray(images)).float().div_(255.0)
    x = x.unsqueeze(1).expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    size = pre.crop_size
    if x.shape[-1] != size or x.shape[-2] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False)
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def digits_domain_data(pre: Preprocessing, size: int = 28, seed: int = 0, *, source: str = "digits",
                       target: str = "digits-m") -> DomainData:
    """The offline task in memory (no files): scikit-learn digits -> the same digits blended (MNIST-M recipe).

    ``seed`` draws the stratified train/test split (70 % / 30 %, shared by both domains); it changes
    neither the images nor the blending (photo patches are always drawn with seed 42, as in
    ``create_mnistm.py``). The default ``seed=0`` is the documented benchmark task, the same split as
    the ``digits``/``digits-m`` folders that ``prepare_named`` writes.
    """
    arrays = mnistm.digits_domains(size=size, seed=seed)

    def items(name: str, split: str) -> TensorItems:
        return TensorItems(arrays_to_tensor(arrays[name][f"x_{split}"], pre),
                           torch.from_numpy(arrays[name][f"y_{split}"]))

    return DomainData(DIGIT_CLASSES, items(source, "train"), items(source, "test"), items(target, "train"),
                      items(target, "test"), True,
                      {"source": source, "target": target, "in_memory": True, "size": size, "split_seed": seed})


# --- named datasets written as image folders ------------------------------------------------------------


def _write_digits_pair(root: Path, size: int) -> None:
    arrays = mnistm.digits_domains(size=size)
    for name, arr in arrays.items():
        for split in ("train", "test"):
            mnistm.write_image_folder(root / name / split, arr[f"x_{split}"], arr[f"y_{split}"], DIGIT_CLASSES)


def _write_mnist_pair(root: Path, size: int, photos: Path | None = None) -> None:
    photo_arrays = mnistm.load_photo_folder(photos) if photos else mnistm.load_bsds500_photos(root / "bsds500")
    for split, train in (("train", True), ("test", False)):
        images, labels = mnistm.load_mnist(root / "torchvision", train)
        mnistm.write_image_folder(root / "mnist" / split, images, labels, DIGIT_CLASSES)
        blended = mnistm.blend_digits(images, photo_arrays, seed=42 if train else 43)
        mnistm.write_image_folder(root / "mnist-m" / split, blended, labels, DIGIT_CLASSES)


#: name -> (writer of both folders, description). Pairs are written together: they share one split.
NAMED_DOMAINS: dict[str, tuple[Callable[..., None], str]] = {
    "digits": (_write_digits_pair, "scikit-learn digits (offline source)"),
    "digits-m": (_write_digits_pair, "scikit-learn digits blended with skimage photo patches (offline target)"),
    "mnist": (_write_mnist_pair, "MNIST via torchvision (needs a download)"),
    "mnist-m": (_write_mnist_pair, "MNIST blended with BSDS500 patches (needs downloads)"),
}


def default_data_root() -> Path:
    """The one dataset root (``$TRANSFERLAB_CACHE/datasets`` or the user cache directory)."""
    return dataset_root()


def prepare_named(name: str, data_root: Path | None = None, size: int = 28, photos: Path | None = None) -> Path:
    """Write the named domain's folders (``train/`` and ``test/`` class folders) once; return its folder."""
    if name not in NAMED_DOMAINS:
        raise DataError(f"unknown dataset name {name!r}; expected one of {', '.join(NAMED_DOMAINS)} or an "
                        f"image folder path.{did_you_mean(name, list(NAMED_DOMAINS))}")
    writer = NAMED_DOMAINS[name][0]
    pair = "digits" if name.startswith("digits") else "mnist"
    root = Path(data_root or default_data_root()) / f"{pair}-{size}"
    marker = root / ".complete"
    if not marker.exists():
        root.mkdir(parents=True, exist_ok=True)
        writer(root, size, photos) if pair == "mnist" else writer(root, size)
        write_json(marker, {"size": size, "pair": pair})
    return root / name


def resolve_domain(spec: str, data_root: Path | None = None, size: int = 28) -> Path:
    """A named dataset (written on first use) or an existing folder."""
    if spec in NAMED_DOMAINS:
        return prepare_named(spec, data_root, size)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise DataError(f"--source/--target {spec!r} is neither a dataset name ({', '.join(NAMED_DOMAINS)}) nor "
                        f"an existing folder.{did_you_mean(spec, list(NAMED_DOMAINS))} Pass a folder of class "
                        "sub-folders (or, for the target, a folder of unlabelled images)")
    return path


def _has_class_folders(path: Path) -> bool:
    if (path / "train").is_dir() and (path / "test").is_dir():
        return True
    return any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())


def load_domain_folders(source: Path, target: Path, pre: Preprocessing, *, test_fraction: float = 0.3,
                        seed: int = 0) -> DomainData:
    """Source (labelled class folders) and target (class folders, or unlabelled images) as datasets.

    A labelled target must have exactly the source's class names; its labels are used for evaluation only.
    """
    transform = image_transform(pre)
    src = load_split(source, train_per_class=None, test_fraction=test_fraction, seed=seed)
    info = {"source": str(source), "target": str(target), "source_layout": src.layout,
            "skipped": len(src.skipped), "test_fraction": None}

    def dataset(samples) -> ImagePathDataset:
        return ImagePathDataset([s.path for s in samples], [s.label for s in samples], transform)

    if _has_class_folders(target):
        tgt = load_split(target, train_per_class=None, test_fraction=test_fraction, seed=seed)
        if tgt.classes != src.classes:
            only_s, only_t = sorted(set(src.classes) - set(tgt.classes)), sorted(set(tgt.classes) - set(src.classes))
            raise DataError(f"source {source} and target {target} have different class sets: only in source: "
                            f"{only_s or '-'}; only in target: {only_t or '-'}. Domain adaptation needs the same "
                            "classes in both domains: rename or remove class folders (or give the target as a "
                            "folder of unlabelled images)")
        info.update(target_layout=tgt.layout, skipped=len(src.skipped) + len(tgt.skipped))
        if src.layout != "train/test" or tgt.layout != "train/test":
            info["test_fraction"] = test_fraction  # it drew a split (ignored where a folder has train/ and test/)
        return DomainData(src.classes, dataset(src.train), dataset(src.test), dataset(tgt.train),
                          dataset(tgt.test), True, info)
    paths, skipped = scan_images(target)
    if not paths:
        raise DataError(f"target folder {target} holds no usable image ({len(skipped)} files skipped); expected "
                        "class sub-folders or unlabelled images")
    unlabelled = ImagePathDataset(paths, None, transform)
    info.update(target_layout="unlabelled images", skipped=len(src.skipped) + len(skipped),
                test_fraction=test_fraction if src.layout != "train/test" else None)
    return DomainData(src.classes, dataset(src.train), dataset(src.test), unlabelled, unlabelled, False, info)


__all__ = ["DIGIT_CLASSES", "NAMED_DOMAINS", "DomainData", "TensorItems", "arrays_to_tensor", "default_data_root",
           "dataset_digest", "digits_domain_data", "load_domain_folders", "prepare_named", "resolve_domain"]
