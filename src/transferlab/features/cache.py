"""The on-disk feature cache: content-addressed, checksummed, safe for concurrent processes, resumable.

An entry is keyed by a hash of everything that determines the features: the content of every image
file (in order), the backbone, the weights identity, the layer, the preprocessing, the pooling, L2, the
precision and the package version. Extraction writes fixed-size shards as it goes (each one atomically,
with a checksum of its content inside it), so an interrupted run (Ctrl-C, ``kill -9``) resumes at the
first missing shard; when all shards exist they are merged into ``features.npy`` + ``ok.npy`` +
``meta.json`` (the sidecar, written last, with the checksum and shape of both arrays) and the shards are
removed. A reader checks that the sidecar describes exactly what it asked for and refuses anything else.

Integrity: every load verifies the checksums, the shape and that the features are finite; a damaged
entry or shard is reported in one logged warning and recomputed, never used.

Concurrency: several processes may fill one cache at once. A shard is written only by the process that
holds its lock (``.shard-NNNNNN.lock`` in the entry folder, an exclusive ``flock``); merging and removing
the shards happens under the entry's lock (``.entry.lock``), and only once every shard exists, so no
process removes a file another one is still writing or reading. Locks are released by the OS when a
process dies; a lock file is removed by its holder on release (a leftover of ``kill -9`` is harmless).

A cache directory that cannot be written (read-only, full disk) is reported in one warning; the run goes
on with the entry kept in memory, and its result is returned, only not cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .._utils import atomic_save, file_digest, read_json, text_digest, write_json
from ..errors import CacheError

try:  # POSIX; elsewhere the cache still works for one process at a time
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$TRANSFERLAB_CACHE`` or the user cache directory (``~/.cache/transferlab`` on Linux)."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get("TRANSFERLAB_CACHE") or user_cache_dir("transferlab")) / "features"


@dataclass
class CachedFeatures:
    features: np.ndarray        # (n_images, dim) float32; rows of failed images are zero
    ok: np.ndarray              # (n_images,) bool
    failures: dict[int, str]    # image index -> reason it could not be decoded


class _Damaged(Exception):
    """A cache file is unreadable or does not verify (internal; turned into a warning)."""


def _acquire(path: Path, blocking: bool) -> int | None:
    """An exclusive ``flock`` on ``path`` (created if missing): its fd, or None when another process holds it
    and ``blocking`` is false. The lock file is unlinked by its holder on release, so after locking we check
    that the file we locked is still the one at ``path``."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # its holder removed it between our open and our lock: take the new one


def _release(fd: int, path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)  # while still holding it (see _acquire)
    os.close(fd)


def _array_digest(*parts: Any) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(f"{part.dtype.str}{part.shape}".encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(str(part).encode())
        h.update(b"\x00")
    return h.hexdigest()


def _stamp(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class CacheEntry:
    """One cache entry (a folder); see the module docstring."""

    def __init__(self, root: Path, description: dict[str, Any], image_digests: list[str]) -> None:
        self.description = {**description, "n_images": len(image_digests),
                            "images_digest": text_digest(image_digests)}
        self.key = text_digest(self.description)
        self.folder = Path(root) / self.key[:2] / self.key
        self.writable = True                      # false after the cache directory refused a write
        self._memory: dict[int, CachedFeatures] = {}  # shards kept in memory when not writable
        self._damaged_meta: tuple | None = None   # the sidecar found damaged (ignored until replaced)

    # -- the cache directory refusing writes ------------------------------------------------------
    def _disable(self, exc: OSError) -> None:
        if self.writable:
            log.warning("feature cache %s cannot be written (%s); continuing without caching these features",
                        self.folder, exc.strerror or exc)
        self.writable = False

    def lock_path(self, shard: int | None = None) -> Path:
        return self.folder / (".entry.lock" if shard is None else f".shard-{shard:06d}.lock")

    def try_lock(self, shard: int | None = None, blocking: bool = False) -> int | None:
        """The fd of this entry's (or one shard's) lock; -1 where the cache cannot be written (no lock
        needed, nothing is written); None when another process holds it (``blocking`` false)."""
        if not self.writable:
            return -1
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            return _acquire(self.lock_path(shard), blocking)
        except OSError as exc:
            self._disable(exc)
            return -1

    def unlock(self, fd: int | None, shard: int | None = None) -> None:
        if fd is not None and fd >= 0:
            _release(fd, self.lock_path(shard))

    @contextlib.contextmanager
    def locked(self, shard: int | None = None) -> Iterator[None]:
        fd = self.try_lock(shard, blocking=True)
        try:
            yield
        finally:
            self.unlock(fd, shard)

    # -- complete entries -------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.folder / "meta.json"

    def is_complete(self) -> bool:
        """All files of a complete entry exist (and the sidecar is not one already found damaged)."""
        if not (self.meta_path.is_file() and (self.folder / "features.npy").is_file()):
            return False
        return self._damaged_meta is None or _stamp(self.meta_path) != self._damaged_meta

    def _verify(self, dim: int | None, mmap: bool = False) -> CachedFeatures:
        try:
            meta = read_json(self.meta_path)
        except (OSError, ValueError) as exc:
            raise _Damaged(f"unreadable meta.json ({exc})") from exc
        if not isinstance(meta, dict):
            raise _Damaged("meta.json is not an object")
        if meta.get("description") != self.description:
            raise CacheError(f"cache entry {self.folder} describes other features than requested; delete it "
                             "or pass --cache-dir elsewhere")
        sums = meta.get("checksums")
        if not isinstance(sums, dict):
            raise _Damaged("meta.json has no checksums")
        arrays = {}
        for name in ("features.npy", "ok.npy"):
            try:
                if file_digest(self.folder / name) != sums.get(name):
                    raise _Damaged(f"{name} does not match its checksum")
                # features memory-mapped when asked: read from disk as used, never whole in RAM
                arrays[name] = np.load(self.folder / name, allow_pickle=False,
                                       mmap_mode="r" if mmap and name == "features.npy" else None)
            except _Damaged:
                raise
            except Exception as exc:  # truncated or not an array: OSError, ValueError, EOFError...
                raise _Damaged(f"{name} is unreadable ({type(exc).__name__}: {exc})") from exc
        features, ok = arrays["features.npy"], arrays["ok.npy"]
        n = self.description["n_images"]
        if features.ndim != 2 or features.shape[0] != n or list(features.shape) != meta.get("shape") \
                or (dim is not None and features.shape[1] != dim):
            raise _Damaged(f"features of shape {features.shape} for {n} images"
                           + (f" of width {dim}" if dim is not None else ""))
        if features.dtype != np.float32 or not _all_finite(features):
            raise _Damaged("features are not finite float32")
        if ok.shape != (n,) or ok.dtype != np.bool_:
            raise _Damaged(f"ok.npy of shape {ok.shape} for {n} images")
        failures = {int(k): str(v) for k, v in (meta.get("failures") or {}).items()}
        return CachedFeatures(features, ok, failures)

    def load(self, dim: int | None = None, quiet: bool = False, mmap: bool = False) -> CachedFeatures | None:
        """The verified entry, or None when it is missing or damaged (reported in one warning unless
        ``quiet``; a damaged entry is then recomputed). A sidecar for other features is a CacheError.
        ``mmap``: the features as a read-only ``np.memmap`` of ``features.npy`` (out of core)."""
        try:
            return self._verify(dim, mmap)
        except _Damaged:
            pass
        with self.locked():  # not a half-replaced entry: look again while no process can be finalising it
            if not self.is_complete():
                return None
            try:
                return self._verify(dim, mmap)
            except _Damaged as exc:
                if not quiet:
                    log.warning("feature cache entry %s is damaged (%s); recomputing it", self.folder, exc)
                self._damaged_meta = _stamp(self.meta_path)
                return None

    # -- shards of an entry being written ---------------------------------------------------------
    def shard_path(self, index: int) -> Path:
        return self.folder / "shards" / f"{index:06d}.npz"

    def has_shard(self, index: int) -> bool:
        return index in self._memory or self.shard_path(index).is_file()

    def save_shard(self, index: int, features: np.ndarray, ok: np.ndarray, failures: dict[int, str]) -> None:
        """Write one shard atomically (call while holding its lock); kept in memory if the cache refuses it."""
        reasons = json.dumps({str(k): v for k, v in failures.items()}, sort_keys=True)
        features, ok = np.ascontiguousarray(features, np.float32), np.asarray(ok, np.bool_)
        digest = _array_digest(features, ok, reasons)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, features=features, ok=ok, failures=np.array(reasons), digest=np.array(digest))

        if self.writable:
            try:
                atomic_save(self.shard_path(index), write)
                return
            except OSError as exc:
                self._disable(exc)
        self._memory[index] = CachedFeatures(features, ok, {int(k): v for k, v in failures.items()})

    def load_shard(self, index: int, rows: int | None = None, dim: int | None = None) -> CachedFeatures | None:
        """The verified shard; None if it is missing, or damaged (then warned about and removed)."""
        if index in self._memory:
            return self._memory[index]
        path = self.shard_path(index)
        try:
            with np.load(path, allow_pickle=False) as data:
                features, ok = data["features"], data["ok"]
                reasons, digest = str(data["failures"]), str(data["digest"])
            if _array_digest(features, ok, reasons) != digest:
                raise _Damaged("it does not match its checksum")
            if features.ndim != 2 or (rows is not None and features.shape[0] != rows) \
                    or (dim is not None and features.shape[1] != dim) or ok.shape != (features.shape[0],):
                raise _Damaged(f"features of shape {features.shape}")
            if not np.isfinite(features).all():
                raise _Damaged("features are not finite")
            failures = {int(k): v for k, v in json.loads(reasons).items()}
        except FileNotFoundError:
            return None
        except Exception as exc:  # truncated, not a zip, a missing key, a bad checksum...
            reason = str(exc) if isinstance(exc, _Damaged) else f"{type(exc).__name__}: {exc}"
            log.warning("feature cache shard %s is damaged (%s); recomputing it", path, reason)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return CachedFeatures(features, ok, failures)

    def finalize(self, n_shards: int, shard_size: int | None = None, dim: int | None = None,
                 mmap: bool = False) -> CachedFeatures | None:
        """Merge all shards into the complete entry (atomically) and remove them, under the entry's lock.
        Returns the entry (also when another process completed it first), or None when a shard is missing
        or was damaged: those shards are to be computed (again). ``mmap``: the shards are streamed into
        ``features.npy`` one at a time and the entry is returned memory-mapped (memory: one shard)."""
        n = self.description["n_images"]
        with self.locked():
            if self.is_complete():  # another process finished it first (or it is the damaged one)
                with contextlib.suppress(_Damaged):
                    return self._verify(dim, mmap)
            if mmap and self.writable:
                try:
                    return self._write_complete(None, (n_shards, shard_size, dim))
                except OSError as exc:
                    self._disable(exc)  # then merged in memory below, as for any unwritable cache
            parts = []
            for i in range(n_shards):
                rows = None if shard_size is None else min(n, (i + 1) * shard_size) - i * shard_size
                part = self.load_shard(i, rows, dim)
                if part is None:
                    return None
                parts.append(part)
            if len({p.features.shape[1] for p in parts}) != 1:
                log.warning("feature cache entry %s has shards of different widths; recomputing it", self.folder)
                for i in range(n_shards):
                    with contextlib.suppress(OSError):
                        self.shard_path(i).unlink()
                self._memory.clear()
                return None
            merged = CachedFeatures(np.concatenate([p.features for p in parts]), np.concatenate([p.ok for p in parts]),
                                    {k: v for p in parts for k, v in p.failures.items()})
            if self.writable:
                try:
                    self._write_complete(merged)
                except OSError as exc:
                    self._disable(exc)
            return merged

    def _stream_complete(self, n_shards: int, shard_size: int | None, dim: int | None) -> CachedFeatures | None:
        """:meth:`finalize` without holding the features: each verified shard is copied into a memory-mapped
        ``features.npy`` in turn; None (nothing written) when a shard is missing, damaged or of another width."""
        n = self.description["n_images"]
        first = self.load_shard(0, None if shard_size is None else min(n, shard_size), dim)
        if first is None:
            return None
        width, oks, failures, sums = first.features.shape[1], [], {}, {}

        def write_features(tmp: str) -> None:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, width))
            row = 0
            for i in range(n_shards):
                rows = None if shard_size is None else min(n, (i + 1) * shard_size) - i * shard_size
                part = first if i == 0 else self.load_shard(i, rows, width)
                if part is None:
                    raise _Damaged(f"shard {i} is missing")
                out[row:row + len(part.features)] = part.features
                row += len(part.features)
                oks.append(part.ok)
                failures.update(part.failures)
            if row != n:
                raise _Damaged(f"the shards hold {row} rows for {n} images")
            out.flush()
            del out
            sums["features.npy"] = file_digest(Path(tmp))

        try:
            atomic_save(self.folder / "features.npy", write_features)
        except _Damaged:
            return None
        ok = np.concatenate(oks)

        def write_ok(tmp: str) -> None:
            _save_npy(tmp, ok)
            sums["ok.npy"] = file_digest(Path(tmp))

        atomic_save(self.folder / "ok.npy", write_ok)
        write_json(self.meta_path, {"description": self.description, "shape": [n, width], "checksums": sums,
                                    "failures": {str(k): v for k, v in failures.items()}})
        self._damaged_meta = None
        shutil.rmtree(self.folder / "shards", ignore_errors=True)
        features = np.load(self.folder / "features.npy", mmap_mode="r", allow_pickle=False)
        return CachedFeatures(features, ok, failures)

    def _write_complete(self, merged: CachedFeatures | None, stream: tuple | None = None) -> CachedFeatures | None:
        """Write the complete entry: ``merged`` from memory, or the shards streamed (``stream``, see
        :meth:`_stream_complete`, whose result is returned)."""
        if stream is not None:
            return self._stream_complete(*stream)
        sums = {}
        for name, array in (("features.npy", merged.features), ("ok.npy", merged.ok)):
            def write(tmp: str, array: np.ndarray = array, name: str = name) -> None:
                _save_npy(tmp, array)
                sums[name] = file_digest(Path(tmp))

            atomic_save(self.folder / name, write)
        write_json(self.meta_path, {"description": self.description, "shape": list(merged.features.shape),
                                    "checksums": sums,
                                    "failures": {str(k): v for k, v in merged.failures.items()}})
        self._damaged_meta = None
        shutil.rmtree(self.folder / "shards", ignore_errors=True)


def _all_finite(features: np.ndarray, rows: int = 65_536) -> bool:
    """``np.isfinite(features).all()`` block by block (a memory map is never read whole into RAM)."""
    return all(np.isfinite(features[i:i + rows]).all() for i in range(0, len(features), rows))


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array)
