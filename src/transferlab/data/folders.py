"""Image folders and their train/test splits (read-only: nothing is ever written into them).

Two layouts are recognised:

* ``DATA/train/<class>/...`` and ``DATA/test/<class>/...`` (a given split);
* ``DATA/<class>/...`` split per class with a seed, either the 15 Scene protocol
  (``train_per_class`` images per class for training, the rest for testing) or a ``test_fraction``.

Samples are ordered by class index, then by path relative to the root: the order of feature rows.

Names are whatever the OS gives. A file's path stays exactly as :func:`os.fsdecode` gives it (bytes that
are not UTF-8 become lone surrogates, so the path still opens the file, and the CSVs write those bytes
back). A class name is a label written into JSON, reports, figures and logs, so a class folder whose name
is not UTF-8 is named with each such byte as ``\\xNN`` (``zero\\xff`` for the folder ``b"zero\\xff"``):
:func:`class_folder_bytes` maps the name back to the folder's bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._utils import escaped_text
from ..errors import DataError
from .decode import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageDecodeError, check_image_header


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass
class DatasetSplit:
    """A dataset's classes, its train and test samples, and the files that were skipped (with why)."""

    root: Path
    classes: list[str]
    train: list[Sample]
    test: list[Sample]
    layout: str
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class per split."""
        table = {c: {"train": 0, "test": 0} for c in self.classes}
        for split in ("train", "test"):
            for s in getattr(self, split):
                table[self.classes[s.label]][split] += 1
        return table

    def describe(self) -> dict:
        return {"root": str(self.root), "layout": self.layout, "classes": self.classes,
                "n_train": len(self.train), "n_test": len(self.test), "n_skipped": len(self.skipped)}


def scan_class_folders(folder: Path, max_pixels: int = DEFAULT_MAX_PIXELS
                       ) -> tuple[dict[str, list[Path]], list[tuple[str, str]]]:
    """Return ``{class: sorted image paths}`` for the sub-folders of ``folder`` and the skipped files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist or is not a folder; pass the folder that holds "
                        "one sub-folder per class")
    classes: dict[str, list[Path]] = {}
    skipped: list[tuple[str, str]] = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        good, bad = scan_images(class_dir, max_pixels)
        classes[class_name(class_dir.name)] = good
        skipped.extend(bad)
    return classes, skipped


def class_name(folder_name: str) -> str:
    """The class name of a folder: its name, with each byte that is not UTF-8 written ``\\xNN``."""
    return escaped_text(folder_name)


def class_folder_bytes(name: str) -> bytes:
    """The folder name (bytes) that :func:`class_name` turned into ``name``."""
    return name.encode("utf-8").decode("unicode_escape").encode("latin-1") if "\\x" in name else name.encode()


def scan_images(folder: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[list[Path], list[tuple[str, str]]]:
    """All readable images below ``folder`` (recursive, sorted) and the files skipped with their reason."""
    good: list[Path] = []
    bad: list[tuple[str, str]] = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() or p.is_symlink()):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # hidden files (.DS_Store, ._foo) are not data
        if not path.is_file():
            reason = _link_problem(path)
            if reason:
                bad.append((str(path), reason))
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            bad.append((str(path), f"not an image file (suffix {path.suffix or 'none'!r})"))
            continue
        try:
            check_image_header(path, max_pixels)
        except ImageDecodeError as exc:
            bad.append((str(path), str(exc).removeprefix(f"{path}: ")))
            continue
        good.append(path)
    return good, bad


def _link_problem(path: Path) -> str | None:
    """Why a symbolic link is not an image file (a loop, a missing target), or None (a link to a folder)."""
    import errno

    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"broken symbolic link (its target {target!r} does not exist)"
    return None


def _check_classes(classes: dict[str, list[Path]], where: Path, skipped: list[tuple[str, str]]) -> None:
    if not classes:
        raise DataError(f"no class folders in {where}; expected {where}/<class>/<images> "
                        f"or {where}/train/<class> + {where}/test/<class>")
    empty = [c for c, paths in classes.items() if not paths]
    if empty:
        note = f" ({len(skipped)} unusable files were skipped)" if skipped else ""
        raise DataError(f"class folder(s) {', '.join(empty)} in {where} hold no usable image{note}; "
                        "add images or remove the folder")
    if len(classes) < 2:
        raise DataError(f"only one class ({next(iter(classes))}) in {where}; a classifier needs at least two "
                        "class folders")


def load_split(root: Path | str, *, train_per_class: int | None = 100, test_fraction: float | None = None,
               seed: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS) -> DatasetSplit:
    """Discover the images of ``root`` and split them (see module docstring).

    ``test_fraction`` takes precedence over ``train_per_class`` for single-folder datasets; both are
    ignored when the folder has its own ``train/`` and ``test/``.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; pass a folder of class sub-folders")
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, skipped_train = scan_class_folders(root / "train", max_pixels)
        test, skipped_test = scan_class_folders(root / "test", max_pixels)
        skipped = skipped_train + skipped_test
        _check_classes(train, root / "train", skipped)
        _check_classes(test, root / "test", skipped)
        if set(train) != set(test):
            only_train, only_test = sorted(set(train) - set(test)), sorted(set(test) - set(train))
            raise DataError(f"train and test class folders differ in {root}: only in train: {only_train or '-'}; "
                            f"only in test: {only_test or '-'}; make both hold the same class names")
        classes = sorted(train)
        return DatasetSplit(root, classes, _samples(train, classes), _samples(test, classes), "train/test", skipped)

    by_class, skipped = scan_class_folders(root, max_pixels)
    _check_classes(by_class, root, skipped)
    classes = sorted(by_class)
    rng = np.random.default_rng(seed)
    train: dict[str, list[Path]] = {}
    test: dict[str, list[Path]] = {}
    for name in classes:
        paths = by_class[name]
        n_train = _n_train(name, len(paths), train_per_class, test_fraction)
        order = rng.permutation(len(paths))
        train[name] = sorted(paths[i] for i in order[:n_train])
        test[name] = sorted(paths[i] for i in order[n_train:])
    layout = f"class folders, test_fraction={test_fraction}" if test_fraction is not None \
        else f"class folders, train_per_class={train_per_class}"
    return DatasetSplit(root, classes, _samples(train, classes), _samples(test, classes), layout, skipped)


def _n_train(name: str, n: int, train_per_class: int | None, test_fraction: float | None) -> int:
    if test_fraction is not None:
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"--test-fraction must be between 0 and 1 (exclusive); got {test_fraction}")
        n_train = n - max(1, int(round(test_fraction * n)))
        if n_train < 1:
            raise DataError(f"class {name!r} has {n} image(s): too few to split with test fraction {test_fraction}")
        return n_train
    if train_per_class is None or train_per_class < 1:
        raise DataError(f"--train-per-class must be a positive integer; got {train_per_class}")
    if n <= train_per_class:
        raise DataError(f"class {name!r} has {n} images; --train-per-class {train_per_class} leaves none for "
                        "testing: lower --train-per-class or use --test-fraction")
    return train_per_class


def _samples(by_class: dict[str, list[Path]], classes: list[str]) -> list[Sample]:
    return [Sample(path, classes.index(name)) for name in classes for path in by_class[name]]
