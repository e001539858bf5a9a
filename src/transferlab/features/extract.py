"""Batched, cached, resumable feature extraction from a registry backbone cut at named layers.

One forward pass serves every requested layer (the graph stops after the deepest one). Images are
decoded by DataLoader workers; unreadable files are skipped and reported. See ``cache.py`` for how
results are stored and resumed.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from .. import __version__
from .._progress import progress_bar
from .._utils import file_digest, resolve_device
from ..backbones import Backbone, make_taps
from ..data import DEFAULT_MAX_PIXELS, ImagePathDataset, collate_skipping, image_transform
from ..errors import CacheError, ConfigError, DataError
from .cache import CacheEntry, CachedFeatures, default_cache_dir
from .memmap import select_rows
from .distributed import ExtractionGroup, active_group
from .engines import check_engine, engine_device, make_engine
from .pooling import check_pooling, pooled_size
from .precision import check_precision

SHARD_SIZE = 256
DEFAULT_MAX_FEATURE_GB = 8.0


@dataclass
class ExtractionResult:
    """Features of the images that could be read, in input order.

    ``features[layer]`` has one row per index in ``kept``; ``failures`` lists ``(path, reason)`` of the
    others; ``n_forward`` counts images run through the network by this call (0 on a full cache hit; under
    torchrun, on rank 0, by every rank: ``per_rank_forward`` says how many each).
    """

    features: dict[str, np.ndarray]
    kept: np.ndarray
    failures: list[tuple[str, str]]
    n_forward: int
    seconds: float
    cache_keys: dict[str, str] = field(default_factory=dict)
    per_rank_forward: list[int] | None = None  # under torchrun: images each rank forwarded (features on rank 0 only)

    @property
    def from_cache(self) -> bool:
        return self.n_forward == 0


def default_workers() -> int:
    """Cores - 1, at most 4; none on 2 cores or fewer, where the network's threads already use every core
    and decoding in the main process measured faster (benchmarks/RESULTS.md)."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores - 1)


def default_batch_size(device: torch.device) -> int:
    """8 on CPU, where smaller batches keep activations in cache (ResNet-50 measured 1.2-1.3x faster
    than at 32, VGG16 the same), 32 on a GPU."""
    return 8 if device.type == "cpu" else 32


def extract_features(
    paths: Sequence[Path | str], backbone: Backbone, layers: Sequence[str], *, pooling: str = "none",
    l2: bool = True, batch_size: int | None = None, device: str = "auto", workers: int | None = None,
    precision: str = "fp32", cache_dir: Path | str | None = None, use_cache: bool = True,
    progress: bool = True, max_feature_gb: float = DEFAULT_MAX_FEATURE_GB, max_pixels: int = DEFAULT_MAX_PIXELS,
    engine: str = "torch",
) -> ExtractionResult:
    """Extract L2-normalised (by default) feature vectors of ``paths`` at each of ``layers``.

    ``engine`` runs the forward pass: ``torch`` or ``openvino`` (CPU; see ``engines.py``)."""
    start = time.perf_counter()
    layers = list(dict.fromkeys(layers))
    paths = [Path(p) for p in paths]
    check_pooling(pooling)
    group = active_group()  # under torchrun, inside ``with ExtractionGroup():`` the ranks share the work
    check_engine(engine, device)
    torch_device = resolve_device(engine_device(engine, device))
    if group is not None and torch_device.type == group.ctx.device.type:
        torch_device, progress = group.ctx.device, progress and group.is_main  # this rank's GPU; one bar
    check_precision(precision, torch_device)
    batch_size = default_batch_size(torch_device) if batch_size is None else batch_size
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1; got {batch_size}")
    if not paths:
        raise DataError("no images to extract features from; pass at least one image path")

    with tempfile.TemporaryDirectory(prefix="transferlab-nocache-") as scratch:
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        model_cache = root / "openvino"  # converted engine models are kept even with use_cache=False
        root = root if use_cache else Path(scratch if group is None else group.scratch(scratch))
        digests = [file_digest(p) for p in paths] if group is None else group.digests(paths)
        entries = {layer: CacheEntry(root, _description(backbone, layer, pooling, l2, precision, engine), digests)
                   for layer in layers}
        loaded: dict[str, CachedFeatures] = {}
        for layer, entry in entries.items():  # a damaged entry is warned about and recomputed
            cached = entry.load(mmap=True) if entry.is_complete() and not (group and group.returns_early()) else None
            if cached is not None:
                loaded[layer] = cached
        todo = {layer: e for layer, e in entries.items() if layer not in loaded}
        if group is not None:  # rank 0 says what is missing
            todo = {layer: entries[layer] for layer in group.agree(list(todo))}
        n_forward = 0
        if todo:  # a full cache hit needs neither the network nor its shapes
            n_forward = _extract_missing(paths, backbone, todo, loaded, pooling, l2, batch_size, torch_device,
                                         workers, precision, progress, max_pixels,
                                         max_feature_gb, engine, model_cache, group,
                                         disk=root if use_cache else None)  # cached: past the limit, memory-mapped
        if group is not None and group.everywhere:
            group.barrier()  # every rank has loaded the merged entries before rank 0's scratch folder goes
        if not (group is not None and group.returns_early()):
            first: CachedFeatures = loaded[layers[0]]
            kept = np.flatnonzero(first.ok)
            # the kept rows in RAM, or, past max_feature_gb, left on disk (memory-mapped from the cache entry);
            # selected here, while a --no-cache scratch entry still exists
            features = select_rows({layer: loaded[layer].features for layer in layers}, kept, max_feature_gb)

    keys = {layer: e.key for layer, e in entries.items()}
    per_rank = group.per_rank if group is not None and todo else None
    if per_rank is not None and group.is_main:
        n_forward = sum(per_rank)  # what this call forwarded, on every rank
    if group is not None and group.returns_early():  # a helper: its shards are in the cache, rank 0 has the features
        return ExtractionResult({}, np.zeros(0, np.int64), [], n_forward, time.perf_counter() - start, keys, per_rank)
    failures = [(str(paths[i]), reason) for i, reason in sorted(first.failures.items())]
    return ExtractionResult(features, kept, failures, n_forward, time.perf_counter() - start, keys, per_rank)


def _description(backbone: Backbone, layer: str, pooling: str, l2: bool, precision: str,
                 engine: str = "torch") -> dict:
    return {"backbone": backbone.name, "weights": backbone.weights_id, "layer": layer,
            "preprocessing": backbone.preprocessing.as_dict(), "pooling": pooling, "l2": l2,
            "precision": precision, "engine": engine, "transferlab_version": __version__}


def _check_memory(taps: torch.nn.Module, backbone: Backbone, device: torch.device, pooling: str,
                  n: int, max_gb: float, disk: Path | None = None) -> dict[str, int]:
    """Feature size per layer, from one forward pass on a blank image (milliseconds, against ~0.3 s for
    tracing a second copy on the meta device), before any engine is built (converting one takes seconds);
    refuses features that would not fit in ``max_gb`` (or, with a cache folder ``disk``, where features past
    ``max_gb`` stay memory-mapped, in the free space there)."""
    size = backbone.preprocessing.crop_size
    with torch.inference_mode():
        outputs = taps(torch.zeros(1, len(backbone.preprocessing.mean), size, size, device=device))  # 1: --grayscale
    shapes = {layer: tuple(output.shape[1:]) for layer, output in outputs.items()}
    dims = {layer: pooled_size(shape, pooling) for layer, shape in shapes.items()}
    gigabytes = n * sum(dims.values()) * 4 / 1e9
    sizes = ", ".join(f"{layer} {shapes[layer]} -> {dims[layer]:,} values" for layer in shapes)
    if disk is not None and gigabytes > max_gb:
        free = shutil.disk_usage(_existing(disk)).free / 1e9
        if gigabytes > free:
            raise ConfigError(f"features would take {gigabytes:.1f} GB for {n} images ({sizes}), more than the "
                              f"{free:.1f} GB free in the feature cache {disk}; use --pooling avg|max|spp or a "
                              "--cache-dir with room")
    elif gigabytes > max_gb:
        raise ConfigError(f"features would take {gigabytes:.1f} GB for {n} images ({sizes}), more than "
                          f"--max-feature-gb {max_gb:g} holds in memory with --no-cache; use --pooling avg|max|spp, "
                          "raise --max-feature-gb, or drop --no-cache (features past the limit then stay on disk, "
                          "memory-mapped from the cache)")
    return dims


def _existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _shard_batches(n: int, missing: list[int], batch_size: int) -> list[list[int]]:
    """Batches of image indices that never cross a shard boundary, over the missing shards only."""
    batches = []
    for shard in missing:
        indices = list(range(shard * SHARD_SIZE, min(n, (shard + 1) * SHARD_SIZE)))
        batches += [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    return batches


MAX_ROUNDS = 3


def _extract_missing(paths, backbone, todo: dict[str, CacheEntry], loaded: dict[str, CachedFeatures], pooling, l2,
                     batch_size, device, workers, precision, progress, max_pixels, max_feature_gb, engine,
                     model_cache, group: ExtractionGroup | None = None, disk: Path | None = None) -> int:
    """Compute the missing shards of ``todo`` and finalise each entry into ``loaded``; a round again for the
    shards found damaged (or left by a process that died) when finalising. In a ``group`` every rank takes
    part in the first round, then rank 0 alone finalises (the others return; in an ``everywhere`` group every
    rank finalises, the entry's lock making one of them merge)."""
    n = len(paths)
    n_shards = math.ceil(n / SHARD_SIZE)
    # the tap service traces its own module: the caller's network keeps its modules and flags
    taps = make_taps(backbone.spec, backbone.model.to(device), list(todo)).eval()
    dims = _check_memory(taps, backbone, device, pooling, n, max_feature_gb, disk)
    forward = make_engine(engine, taps, list(todo), backbone=backbone, pooling=pooling, l2=l2, precision=precision,
                          device=device, model_cache=model_cache)
    workers = default_workers() if workers is None else workers
    n_forward = 0
    todo = dict(todo)
    for round_ in range(MAX_ROUNDS):
        shared, computed = group is not None and round_ == 0, []
        n_forward += _run_missing_shards(paths, backbone, forward, dims, todo, batch_size, device, workers,
                                         progress, max_pixels, group.order if shared else None, computed)
        if shared:
            group.gather(n_forward, computed, list(todo.values()))
            if group.returns_early():
                return n_forward
        for layer, entry in list(todo.items()):
            done = entry.finalize(n_shards, SHARD_SIZE, dims[layer], mmap=True)
            if done is not None:
                loaded[layer] = done
                del todo[layer]
        if not todo:
            if group is not None and group.is_main:
                group.per_rank[0] = n_forward  # with the shards rank 0 computed after the others
            return n_forward
    raise CacheError(f"feature cache entries {', '.join(str(e.folder) for e in todo.values())} could not be "
                     f"completed after {MAX_ROUNDS} rounds (shards damaged again and again); pass --no-cache")


def _needed(todo: dict[str, CacheEntry], shard: int) -> list[str]:
    # has_shard before is_complete: a shard vanishes only when its entry has been completed
    return [layer for layer, e in todo.items() if not e.has_shard(shard) and not e.is_complete()]


def _claim(todo: dict[str, CacheEntry], shard: int, blocking: bool) -> dict[str, int] | None:
    """This shard's lock in every entry of ``todo`` (in key order), or None if another process holds one."""
    held: dict[str, int] = {}
    for layer, entry in sorted(todo.items(), key=lambda item: item[1].key):
        fd = entry.try_lock(shard, blocking)
        if fd is None:
            _unclaim(todo, shard, held)
            return None
        held[layer] = fd
    return held


def _unclaim(todo: dict[str, CacheEntry], shard: int, held: dict[str, int]) -> None:
    for layer, fd in held.items():
        todo[layer].unlock(fd, shard)


def _run_missing_shards(paths, backbone, forward, dims, todo: dict[str, CacheEntry], batch_size, device, workers,
                        progress, max_pixels, order=None, computed: list[int] | None = None) -> int:
    """Compute every shard missing from an entry of ``todo``. A shard is computed by the process holding its
    lock; the shards another process holds are waited for and then computed here only if still missing.
    ``order`` puts the missing shards in the order to claim them; ``computed`` gets the shards computed here."""
    n = len(paths)
    n_shards = math.ceil(n / SHARD_SIZE)
    pending = [s for s in range(n_shards) if _needed(todo, s)]
    pending = order(pending) if order is not None else pending
    n_forward = 0
    dataset = ImagePathDataset(paths, transform=image_transform(backbone.preprocessing), max_pixels=max_pixels)
    while pending:
        claims: dict[int, dict[str, int]] = {}
        needed: dict[int, list[str]] = {}
        deferred: list[int] = []

        def batches():  # claims lazily, in the main process, as the loader asks for indices
            for shard in pending:
                held = _claim(todo, shard, blocking=False)
                if held is None:
                    deferred.append(shard)
                    continue
                layers = _needed(todo, shard)  # looked at again, now that no other process can write it
                if not layers:
                    _unclaim(todo, shard, held)
                    continue
                claims[shard], needed[shard] = held, layers
                yield from _shard_batches(n, [shard], batch_size)

        try:
            n_forward += _compute(dataset, batches(), n, forward, dims, todo, claims, needed, device, workers,
                                  progress, backbone.name,
                                  sum(min(n, (s + 1) * SHARD_SIZE) - s * SHARD_SIZE for s in pending))
        finally:
            for shard, held in claims.items():
                _unclaim(todo, shard, held)
            if computed is not None:
                computed += [s for s in needed if s not in claims]  # claimed and saved
        for shard in deferred:  # wait for the process computing it (or for the OS to release a dead one's lock)
            held = _claim(todo, shard, blocking=True)
            _unclaim(todo, shard, held or {})
        pending = [s for s in deferred if _needed(todo, s)]
    return n_forward


def _compute(dataset, batch_iter, n, forward, dims, todo, claims, needed, device, workers, progress, name,
             total) -> int:
    """Decode the batches of ``batch_iter`` and run ``forward`` (an engine: images -> pooled vectors) on them,
    saving each shard as soon as all its images are done."""
    loader = DataLoader(dataset, batch_sampler=_Batches(batch_iter), num_workers=workers,
                        collate_fn=collate_skipping, pin_memory=device.type == "cuda")
    buffers: dict[str, dict[int, np.ndarray]] = {layer: {} for layer in todo}
    failures: dict[int, str] = {}
    shard_done: dict[int, int] = {}
    n_forward = 0
    with progress_bar(total, f"extract {name}", progress) as advance, torch.inference_mode():
        for x, _, indices, failed in loader:
            failures.update(failed)
            count = len(failed)
            if x is not None:
                for layer, vectors in forward(x).items():
                    if layer not in buffers:
                        continue
                    for index, row in zip(indices.tolist(), vectors):
                        buffers[layer][index] = row
                count += len(indices)
                n_forward += len(indices)
            shard = (indices[0].item() if x is not None else failed[0][0]) // SHARD_SIZE
            shard_done[shard] = shard_done.get(shard, 0) + count
            advance(count)
            if shard_done[shard] == min(n, (shard + 1) * SHARD_SIZE) - shard * SHARD_SIZE:
                _save_shard(shard, n, {layer: todo[layer] for layer in needed[shard]}, dims, buffers, failures)
                for layer in todo:  # layers that did not need this shard
                    for i in range(shard * SHARD_SIZE, min(n, (shard + 1) * SHARD_SIZE)):
                        buffers[layer].pop(i, None)
                held = claims.pop(shard)
                for layer, fd in held.items():
                    todo[layer].unlock(fd, shard)
    return n_forward


class _Batches:
    """A batch sampler over a lazy iterator of index lists (the DataLoader asks no length of it)."""

    def __init__(self, iterator) -> None:
        self.iterator = iterator

    def __iter__(self):
        return iter(self.iterator)


def _save_shard(shard: int, n: int, todo: dict[str, CacheEntry], dims: dict[str, int], buffers,
                failures: dict[int, str]) -> None:
    indices = range(shard * SHARD_SIZE, min(n, (shard + 1) * SHARD_SIZE))
    ok = np.array([i not in failures for i in indices])
    shard_failures = {i: failures.pop(i) for i in indices if i in failures}
    for layer, entry in todo.items():
        block = np.zeros((len(indices), dims[layer]), np.float32)
        for row, i in enumerate(indices):
            if i in buffers[layer]:
                block[row] = buffers[layer].pop(i)
        if not np.isfinite(block).all():
            raise DataError(f"{layer}: the network gave non-finite features for images "
                            f"{shard * SHARD_SIZE}-{indices[-1]}; they are refused (not cached). Check the "
                            "weights, or use --precision fp32")
        entry.save_shard(shard, block, ok, shard_failures)
