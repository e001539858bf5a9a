"""Features that stay on disk: rows of a memory-mapped cache entry, selected without reading them into RAM.

Past ``--max-feature-gb`` the features of a run are not loaded: the cache's finalised ``features.npy`` is
opened with ``np.load(mmap_mode="r")`` (:meth:`~transferlab.features.cache.CacheEntry.load`) and the rows a
split needs are copied block by block into a new memory-mapped file beside it, unlinked as soon as it is
mapped (it lives as long as the array, leaves nothing behind, and is never in RAM as a whole). The linear
probe then trains on them out of core (:class:`~transferlab.classify.torch_linear.TorchLinearClassifier`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

BLOCK_ROWS = 65_536


def mapped_file(X: np.ndarray) -> Path | None:
    """The file behind a ``np.memmap`` (or a view of one), else None."""
    while isinstance(X, np.ndarray):
        if isinstance(X, np.memmap) and getattr(X, "filename", None):
            return Path(X.filename)
        X = X.base
    return None


def take_rows(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``X[rows]``: in RAM for an in-memory ``X``; for a memory map, a new memory map written block by block
    (the same array itself when ``rows`` are all its rows in order)."""
    rows = np.asarray(rows, dtype=np.int64)
    source = mapped_file(X)
    if source is None:
        return X[rows]
    if len(rows) == len(X) and np.array_equal(rows, np.arange(len(X))):
        return X
    if len(rows) == 0:
        return np.empty((0, X.shape[1]), X.dtype)
    try:  # beside the entry: the cache's disk; a read-only cache falls back to the temporary folder
        fd, tmp = tempfile.mkstemp(dir=source.parent, prefix=".rows-", suffix=".npy")
    except OSError:
        fd, tmp = tempfile.mkstemp(prefix="transferlab-rows-", suffix=".npy")
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=X.dtype, shape=(len(rows), X.shape[1]))
        for start in range(0, len(rows), BLOCK_ROWS):
            out[start:start + BLOCK_ROWS] = X[rows[start:start + BLOCK_ROWS]]
        out.flush()
        del out
        return np.load(tmp, mmap_mode="r")
    finally:
        _unlink(tmp)


def _unlink(path: str) -> None:
    """Remove ``path``; an open memory map of it stays readable (POSIX) and the space is freed with it."""
    try:
        os.unlink(path)
    except OSError:  # pragma: no cover - Windows keeps a mapped file
        pass


def keep_in_memory(features: dict[str, np.ndarray], kept: np.ndarray, max_gb: float) -> bool:
    """Whether the kept rows of every layer fit in ``max_gb`` (``--max-feature-gb``)."""
    gigabytes = sum(len(kept) * f.shape[1] * f.dtype.itemsize for f in features.values()) / 1e9
    if gigabytes <= max_gb:
        return True
    return any(mapped_file(f) is None for f in features.values())  # an unwritable cache kept them in memory


def select_rows(features: dict[str, np.ndarray], kept: np.ndarray, max_gb: float) -> dict[str, np.ndarray]:
    """The ``kept`` rows of each layer: read into RAM when they fit ``max_gb``, else left memory-mapped."""
    if keep_in_memory(features, kept, max_gb):
        return {layer: np.asarray(f[kept]) for layer, f in features.items()}
    return {layer: take_rows(f, kept) for layer, f in features.items()}
