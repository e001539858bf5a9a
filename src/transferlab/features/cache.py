"""The on-disk feature cache: content-addressed, described by a JSON sidecar, written atomically, resumable.

An entry is keyed by a hash of everything that determines the features: the content of every image
file (in order), the backbone, the weights identity, the layer, the preprocessing, the pooling, L2, the
precision and the package version. Extraction writes fixed-size shards as it goes (each one atomically),
so an interrupted run (Ctrl-C, ``kill -9``) resumes at the first missing shard; when all shards exist they
are merged into ``features.npy`` + ``meta.json`` and the shards are removed. A reader checks that the
sidecar describes exactly what it asked for and refuses anything else.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._utils import atomic_save, read_json, text_digest, write_json
from ..errors import CacheError


def default_cache_dir() -> Path:
    """``$TRANSFERLAB_CACHE`` or the user cache directory (``~/.cache/transferlab`` on Linux)."""
    import os

    from platformdirs import user_cache_dir

    return Path(os.environ.get("TRANSFERLAB_CACHE") or user_cache_dir("transferlab")) / "features"


@dataclass
class CachedFeatures:
    features: np.ndarray        # (n_images, dim) float32; rows of failed images are zero
    ok: np.ndarray              # (n_images,) bool
    failures: dict[int, str]    # image index -> reason it could not be decoded


class CacheEntry:
    """One cache entry (a folder); see the module docstring."""

    def __init__(self, root: Path, description: dict[str, Any], image_digests: list[str]) -> None:
        self.description = {**description, "n_images": len(image_digests),
                            "images_digest": text_digest(image_digests)}
        self.key = text_digest(self.description)
        self.folder = Path(root) / self.key[:2] / self.key

    # -- complete entries -------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.folder / "meta.json"

    def is_complete(self) -> bool:
        return self.meta_path.is_file() and (self.folder / "features.npy").is_file()

    def load(self) -> CachedFeatures:
        try:
            meta = read_json(self.meta_path)
        except (OSError, json.JSONDecodeError) as exc:
            raise CacheError(f"cache entry {self.folder} is damaged ({exc}); delete it or pass --no-cache") from exc
        if meta.get("description") != self.description:
            raise CacheError(f"cache entry {self.folder} describes other features than requested; delete it "
                             "or pass --cache-dir elsewhere")
        features = np.load(self.folder / "features.npy", mmap_mode=None)
        ok = np.load(self.folder / "ok.npy")
        if features.shape[0] != self.description["n_images"] or ok.shape[0] != features.shape[0]:
            raise CacheError(f"cache entry {self.folder} has {features.shape[0]} rows for "
                             f"{self.description['n_images']} images; delete it or pass --no-cache")
        return CachedFeatures(features, ok, {int(k): v for k, v in meta.get("failures", {}).items()})

    # -- shards of an entry being written ---------------------------------------------------------
    def shard_path(self, index: int) -> Path:
        return self.folder / "shards" / f"{index:06d}.npz"

    def has_shard(self, index: int) -> bool:
        return self.shard_path(index).is_file()

    def save_shard(self, index: int, features: np.ndarray, ok: np.ndarray, failures: dict[int, str]) -> None:
        reasons = np.array(json.dumps({str(k): v for k, v in failures.items()}))

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, features=features, ok=ok, failures=reasons)

        atomic_save(self.shard_path(index), write)

    def load_shard(self, index: int) -> CachedFeatures:
        with np.load(self.shard_path(index)) as data:
            failures = {int(k): v for k, v in json.loads(str(data["failures"])).items()}
            return CachedFeatures(data["features"], data["ok"], failures)

    def finalize(self, n_shards: int) -> CachedFeatures:
        """Merge all shards into the complete entry (atomically) and remove them."""
        parts = [self.load_shard(i) for i in range(n_shards)]
        merged = CachedFeatures(np.concatenate([p.features for p in parts]), np.concatenate([p.ok for p in parts]),
                                {k: v for p in parts for k, v in p.failures.items()})
        atomic_save(self.folder / "features.npy", lambda tmp: _save_npy(tmp, merged.features))
        atomic_save(self.folder / "ok.npy", lambda tmp: _save_npy(tmp, merged.ok))
        write_json(self.meta_path, {"description": self.description, "shape": list(merged.features.shape),
                                    "failures": {str(k): v for k, v in merged.failures.items()}})
        shutil.rmtree(self.folder / "shards", ignore_errors=True)
        return merged


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array)
