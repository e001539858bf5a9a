"""Features of a train/test split: ``X_train, y_train, X_test, y_test`` and the ``features.npz`` file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._utils import atomic_save
from ..backbones import Backbone
from ..data import DatasetSplit
from .extract import ExtractionResult, extract_features
from .memmap import take_rows


@dataclass
class SplitFeatures:
    """The assignment's matrices: rows follow the split's order (class, then path); skipped images removed."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    paths_train: list[str]
    paths_test: list[str]
    classes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def save(self, path: Path | str) -> Path:
        """Write ``features.npz`` (float32 rows, int64 labels, paths and classes as strings)."""
        arrays = {"X_train": self.X_train, "y_train": self.y_train, "X_test": self.X_test, "y_test": self.y_test,
                  "paths_train": np.array(self.paths_train, dtype=str), "paths_test": np.array(self.paths_test, dtype=str),
                  "classes": np.array(self.classes, dtype=str)}

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        atomic_save(Path(path), write)
        return Path(path)

    @classmethod
    def load(cls, path: Path | str) -> "SplitFeatures":
        with np.load(path, allow_pickle=False) as data:
            return cls(data["X_train"], data["y_train"], data["X_test"], data["y_test"],
                       data["paths_train"].tolist(), data["paths_test"].tolist(), data["classes"].tolist())


def extract_split(split: DatasetSplit, backbone: Backbone, layers: list[str], **options
                  ) -> tuple[dict[str, SplitFeatures], ExtractionResult]:
    """Extract every image of the split once (in path order, so any split of the same images shares the
    cache entry) and return one :class:`SplitFeatures` per layer."""
    paths = sorted({str(s.path) for s in split.train + split.test})
    result = extract_features(paths, backbone, layers, **options)
    row_of = {paths[i]: row for row, i in enumerate(result.kept)}
    skipped = list(split.skipped) + result.failures

    def part(samples) -> tuple[list[int], list[str], np.ndarray]:
        good = [s for s in samples if str(s.path) in row_of]
        return [row_of[str(s.path)] for s in good], [str(s.path) for s in good], \
            np.array([s.label for s in good], dtype=np.int64)

    rows_train, paths_train, y_train = part(split.train)
    rows_test, paths_test, y_test = part(split.test)
    out = {layer: SplitFeatures(take_rows(feats, rows_train), y_train, take_rows(feats, rows_test), y_test,
                                paths_train, paths_test, list(split.classes), skipped)  # memory maps stay on disk
           for layer, feats in result.features.items()}
    return out, result
