"""Predictions of a saved model on image files and folders (per image: class, score, top-k)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data import IMAGE_SUFFIXES, scan_images
from ..errors import ConfigError, DataError


def expand_images(items: Sequence[Path | str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files as given, folders searched recursively; returns (image paths, skipped files with reasons)."""
    paths, skipped = [], []
    for item in map(Path, items):
        if item.is_dir():
            good, bad = scan_images(item)
            paths += good
            skipped += bad
        elif item.is_file():
            if item.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(item)
            else:
                skipped.append((str(item), f"not an image file (suffix {item.suffix or 'none'!r})"))
        else:
            raise DataError(f"{item} does not exist; pass image files or folders of images")
    if not paths:
        raise DataError(f"no images found in {', '.join(map(str, items))}")
    return paths, skipped


def predict_images(model, items: Sequence[Path | str], top_k: int = 1, engine: str = "torch", **options
                   ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Rows ``{"path", "class", "score", "top_k": [{"class", "score"}...]}`` and the skipped files.

    ``engine`` computes the features of a model that has them (a linear model: ``torch`` or ``openvino``)."""
    if engine != "torch":
        if "engine" not in inspect.signature(model.predict_scores).parameters:
            raise ConfigError(f"--engine {engine} computes features, for linear models; a {model.kind} model runs "
                              "its whole network in torch. Drop --engine")
        options["engine"] = engine
    paths, skipped = expand_images(items)
    scores, kept, failures = model.predict_scores([str(p) for p in paths], **options)
    rows = []
    for row_scores, index in zip(scores, kept):
        order = np.argsort(-row_scores)[:top_k]
        best = [{"class": model.classes[i], "score": float(row_scores[i])} for i in order]
        rows.append({"path": str(paths[index]), "class": best[0]["class"], "score": best[0]["score"], "top_k": best})
    return rows, skipped + list(failures)
