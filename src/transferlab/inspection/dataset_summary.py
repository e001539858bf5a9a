"""The summary of an image-folder dataset (report ``004`` section 2.1, "Summarize Oxford Flowers 102").

Number of images and classes, images per class per split, the distinct resolutions with their counts
(the report's Figure 10/11: "1,020 images, 102 classes, 363 different resolutions"), colour modes,
the files that training would skip and why, and a grid of sample images per class.

Folders are discovered exactly as the training commands do (:func:`transferlab.data.scan_class_folders`
and :func:`transferlab.data.load_split`), so the counts here are the counts they will use. Nothing is
ever written into the data folder. :func:`summarize_torchvision` does the same for the torchvision datasets
``finetune --dataset`` trains on (Flowers-102 with its own train/val/test splits, CIFAR-10, MNIST).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data import DEFAULT_MAX_PIXELS, ImageDecodeError, check_image_header, load_rgb, load_split, scan_class_folders
from ..errors import DataError


@dataclass
class ImageInfo:
    path: Path
    split: str
    label: str
    width: int
    height: int
    mode: str
    ref: Any = None  # a torchvision item's (split, index); None for a file


@dataclass
class DatasetSummary:
    """Everything :func:`summarize_dataset` found; ``rows_*`` give the tables."""

    root: Path
    layout: str
    classes: list[str]
    splits: list[str]
    counts: dict[str, dict[str, int]]  # class -> split -> images
    images: list[ImageInfo]
    skipped: list[tuple[str, str]]
    split_note: str = ""
    extra: dict = field(default_factory=dict)
    loader: Callable[[ImageInfo], Any] | None = field(default=None, repr=False)

    def load(self, info: ImageInfo):
        """The RGB image of ``info`` (a file, or a torchvision dataset's item)."""
        return self.loader(info) if self.loader is not None else load_rgb(info.path)

    @property
    def resolutions(self) -> Counter:
        """(width, height) -> number of images."""
        return Counter((info.width, info.height) for info in self.images)

    @property
    def modes(self) -> Counter:
        """PIL colour mode (``L``, ``RGB``, ``RGBA``, ``I;16``...) -> number of images."""
        return Counter(info.mode for info in self.images)

    def rows_classes(self) -> list[dict]:
        rows = [{"class": c, **{s: self.counts[c].get(s, 0) for s in self.splits}} for c in self.classes]
        rows.append({"class": "total", **{s: sum(self.counts[c].get(s, 0) for c in self.classes) for s in self.splits}})
        if len(self.splits) > 1:
            for row in rows:
                row["total"] = sum(row[s] for s in self.splits)
        return rows

    def rows_resolutions(self) -> list[dict]:
        ordered = sorted(self.resolutions.items(), key=lambda kv: (-kv[1], kv[0]))
        return [{"width": w, "height": h, "images": n} for (w, h), n in ordered]

    def rows_modes(self) -> list[dict]:
        return [{"mode": m, "images": n, "note": MODE_NOTES.get(m, "converted to RGB")}
                for m, n in sorted(self.modes.items(), key=lambda kv: (-kv[1], kv[0]))]

    def rows_skipped(self) -> list[dict]:
        return [{"file": _relative(path, self.root), "reason": reason} for path, reason in self.skipped]

    def totals(self) -> dict:
        return {"root": str(self.root), "layout": self.layout, "images": len(self.images),
                "classes": len(self.classes), "distinct_resolutions": len(self.resolutions),
                "skipped": len(self.skipped), "splits": self.splits,
                "modes": dict(self.modes), "split_note": self.split_note, **self.extra}

    def as_dict(self) -> dict:
        return {**self.totals(), "per_class": self.rows_classes(), "resolutions": self.rows_resolutions(),
                "color_modes": self.rows_modes(), "skipped_files": self.rows_skipped()}


MODE_NOTES = {
    "RGB": "used as is", "L": "grayscale: replicated to 3 channels", "RGBA": "alpha composited on white",
    "LA": "grayscale + alpha: composited on white", "P": "palette: converted to RGB",
    "I;16": "16-bit: rescaled to 8 bits", "I": "32-bit integer: rescaled to 8 bits", "F": "float: rescaled to 8 bits",
    "CMYK": "converted to RGB", "1": "bilevel: converted to RGB",
}


def summarize_dataset(root: Path | str, *, train_per_class: int | None = None, test_fraction: float | None = None,
                      seed: int = 0, decode: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS,
                      progress=None) -> DatasetSummary:
    """Summarise the image folder ``root`` (``root/<class>/...`` or ``root/{train,test}/<class>/...``).

    Parameters
    ----------
    train_per_class, test_fraction : for a single-folder dataset, also count the train/test split the
        training commands would make with these options (and ``seed``); without them the split
        column is ``images``.
    decode : decode every image fully (as extraction will) to find truncated or corrupt files; without
        it only the headers are read (faster, but such files are then reported as usable).
    progress : optional ``callable(iterable, total) -> iterable`` to show progress.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist or is not a folder; pass the folder that holds one "
                        "sub-folder per class (or train/ and test/)")
    skipped = [(str(p), "not inside a class folder") for p in sorted(root.iterdir())
               if p.is_file() and not p.name.startswith(".")]
    if (root / "train").is_dir() and (root / "test").is_dir():
        layout, by_split = "train/test", {}
        for split in ("train", "test"):
            found, bad = scan_class_folders(root / split, max_pixels)
            by_split[split] = found
            skipped += [(str(p), r) for p, r in bad]
            skipped += [(str(p), "not inside a class folder") for p in sorted((root / split).iterdir())
                        if p.is_file() and not p.name.startswith(".")]
        split_note = "the folder's own train/ and test/"
        ignored = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in ("train", "test")
                         and not p.name.startswith("."))
        if ignored:
            split_note += f"; other folders are not used by training: {', '.join(ignored)}"
    else:
        found, bad = scan_class_folders(root, max_pixels)
        skipped += [(str(p), r) for p, r in bad]
        layout = "class folders"
        by_split, split_note = {"images": found}, "no split requested (pass --train-per-class or --test-fraction)"
        if train_per_class is not None or test_fraction is not None:
            split = load_split(root, train_per_class=train_per_class, test_fraction=test_fraction, seed=seed,
                               max_pixels=max_pixels)
            by_split = {"train": {c: [] for c in split.classes}, "test": {c: [] for c in split.classes}}
            for name in ("train", "test"):
                for sample in getattr(split, name):
                    by_split[name][split.classes[sample.label]].append(sample.path)
            split_note = f"{split.layout}, seed={seed}"
    classes = sorted({c for found in by_split.values() for c in found})
    if not classes:
        raise DataError(f"no class folders in {root}; expected {root}/<class>/<images> "
                        f"or {root}/train/<class> + {root}/test/<class>")

    entries = [(split, c, path) for split, found in by_split.items() for c in classes for path in found.get(c, [])]
    iterator = progress(entries, len(entries)) if progress is not None else entries
    images: list[ImageInfo] = []
    for split, label, path in iterator:
        try:
            width, height, mode = check_image_header(path, max_pixels)
            if decode:
                load_rgb(path, max_pixels)
        except ImageDecodeError as exc:
            skipped.append((str(path), str(exc).removeprefix(f"{path}: ")))
            continue
        images.append(ImageInfo(Path(path), split, label, width, height, mode))
    counts = {c: {s: 0 for s in by_split} for c in classes}
    for info in images:
        counts[info.label][info.split] += 1
    return DatasetSummary(root=root, layout=layout, classes=classes, splits=list(by_split), counts=counts,
                          images=images, skipped=sorted(skipped), split_note=split_note,
                          extra={"decoded": decode})


def summarize_torchvision(name: str, root: Path | str | None = None, *, download: bool = True,
                          progress=None) -> DatasetSummary:
    """Summarise torchvision dataset ``name`` (``flowers102``, ``cifar10``, ``mnist``) as ``finetune --dataset``
    loads it: its own splits (Flowers-102: train / val / test), resolutions and colour modes of every image.

    Offline without the files, raises the same one-line :class:`DataError` as fine-tuning."""
    from ..finetune.datasets import torchvision_data

    data = torchvision_data(name, root, download=download)
    entries = [(split, ref, label) for split, items in data.splits().items() for ref, label in items]
    iterator = progress(entries, len(entries)) if progress is not None else entries
    images: list[ImageInfo] = []
    skipped: list[tuple[str, str]] = []
    for split, ref, label in iterator:
        ds = data.sets[ref[0]]
        files = getattr(ds, "_image_files", None)
        try:
            if files is not None:  # Flowers-102: files on disk, headers are enough for size and mode
                path = Path(files[ref[1]])
                width, height, mode = check_image_header(path)
            else:  # CIFAR-10 / MNIST: in-memory arrays
                path, img = Path(data.describe(ref)), ds[ref[1]][0]
                (width, height), mode = img.size, img.mode
        except (ImageDecodeError, OSError, ValueError) as exc:
            skipped.append((data.describe(ref), str(exc)))
            continue
        images.append(ImageInfo(path, split, data.classes[label], width, height, mode, ref=ref))
    splits = list(data.splits())
    counts = {c: {s: 0 for s in splits} for c in data.classes}
    for info in images:
        counts[info.label][info.split] += 1
    note = ("the dataset's own splits: train trains, val chooses the epoch, test is evaluated once"
            if data.val is not None else "the dataset's own train/test; fine-tuning carves validation from train")
    return DatasetSummary(root=Path(data.root), layout=f"torchvision {name}", classes=list(data.classes),
                          splits=splits, counts=counts, images=images, skipped=skipped, split_note=note,
                          extra={"decoded": False, "dataset": name}, loader=lambda info: data.load(info.ref))


def plot_resolutions(summary: DatasetSummary, path: Path | str, top: int = 30) -> Path:
    """Bar chart of the most frequent resolutions (report ``004`` Figure 11) and a width-height scatter."""
    import matplotlib.pyplot as plt

    from ..report import save_figure

    rows = summary.rows_resolutions()
    shown = rows[:top]
    fig, (bars, scatter) = plt.subplots(1, 2, figsize=(12, max(3.0, 0.22 * len(shown) + 1.2)),
                                        gridspec_kw={"width_ratios": [3, 2]}, layout="constrained")
    bars.barh(range(len(shown)), [r["images"] for r in shown], color="tab:blue")
    bars.set_yticks(range(len(shown)), [f"{r['width']}x{r['height']}" for r in shown], fontsize=7)
    bars.invert_yaxis()
    bars.set_xlabel("images")
    bars.set_title(f"{len(shown)} most frequent of {len(rows)} resolutions (width x height)", fontsize=9)
    if rows:
        sizes = np.array([r["images"] for r in rows], dtype=float)
        scatter.scatter([r["width"] for r in rows], [r["height"] for r in rows], s=10 + 90 * sizes / sizes.max(),
                        alpha=0.6)
    scatter.set_xlabel("width (px)")
    scatter.set_ylabel("height (px)")
    scatter.set_title("every resolution (marker size ~ images)", fontsize=9)
    scatter.grid(alpha=0.3)
    name = summary.extra.get("dataset") or summary.root.name
    fig.suptitle(f"{name}: {len(summary.images):,} images, {len(summary.classes)} classes, "
                 f"{len(rows)} distinct resolutions")
    return save_figure(fig, path)


def plot_samples(summary: DatasetSummary, path: Path | str, per_class: int = 4, max_classes: int = 12,
                 seed: int = 0) -> Path:
    """A grid of ``per_class`` random images (seeded) for up to ``max_classes`` classes, one row per class."""
    import matplotlib.pyplot as plt

    from ..report import save_figure

    rng = np.random.default_rng(seed)
    by_class: dict[str, list[ImageInfo]] = {}
    for info in summary.images:
        by_class.setdefault(info.label, []).append(info)
    classes = [c for c in summary.classes if by_class.get(c)]
    if len(classes) > max_classes:
        classes = sorted(rng.choice(classes, size=max_classes, replace=False).tolist(), key=summary.classes.index)
    cols = max(1, per_class)
    fig, axes = plt.subplots(max(1, len(classes)), cols, figsize=(1.8 * cols + 1.2, 1.9 * max(1, len(classes))),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for row, name in zip(axes, classes):
        pool = by_class[name]
        picks = rng.choice(len(pool), size=min(cols, len(pool)), replace=False)
        for ax, index in zip(row, sorted(picks)):
            info = pool[index]
            ax.imshow(summary.load(info))
            ax.set_title(f"{info.width}x{info.height} {info.mode}", fontsize=6)
        row[0].text(-0.08, 0.5, name, transform=row[0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle(f"samples per class ({len(classes)} of {len(summary.classes)} classes shown)", fontsize=9)
    return save_figure(fig, path)


def _relative(path: str | Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)
