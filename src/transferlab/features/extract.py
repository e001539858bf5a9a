"""Batched, cached, resumable feature extraction from a registry backbone cut at named layers.

One forward pass serves every requested layer (the graph stops after the deepest one). Images are
decoded by DataLoader workers; unreadable files are skipped and reported. See ``cache.py`` for how
results are stored and resumed.
"""

from __future__ import annotations

import math
import os
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
from ..errors import ConfigError, DataError
from .cache import CacheEntry, CachedFeatures, default_cache_dir
from .pooling import check_pooling, l2_normalize, pool, pooled_size
from .precision import autocast, check_precision, prepare_input, prepare_model

SHARD_SIZE = 256
DEFAULT_MAX_FEATURE_GB = 8.0


@dataclass
class ExtractionResult:
    """Features of the images that could be read, in input order.

    ``features[layer]`` has one row per index in ``kept``; ``failures`` lists ``(path, reason)`` of the
    others; ``n_forward`` counts images run through the network by this call (0 on a full cache hit).
    """

    features: dict[str, np.ndarray]
    kept: np.ndarray
    failures: list[tuple[str, str]]
    n_forward: int
    seconds: float
    cache_keys: dict[str, str] = field(default_factory=dict)

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
) -> ExtractionResult:
    """Extract L2-normalised (by default) feature vectors of ``paths`` at each of ``layers``."""
    start = time.perf_counter()
    layers = list(dict.fromkeys(layers))
    paths = [Path(p) for p in paths]
    check_pooling(pooling)
    torch_device = resolve_device(device)
    check_precision(precision, torch_device)
    batch_size = default_batch_size(torch_device) if batch_size is None else batch_size
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1; got {batch_size}")
    if not paths:
        raise DataError("no images to extract features from; pass at least one image path")

    with tempfile.TemporaryDirectory(prefix="transferlab-nocache-") as scratch:
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        root = root if use_cache else Path(scratch)
        digests = [file_digest(p) for p in paths]
        entries = {layer: CacheEntry(root, _description(backbone, layer, pooling, l2, precision), digests)
                   for layer in layers}
        todo = {layer: e for layer, e in entries.items() if not e.is_complete()}
        n_forward = 0
        if todo:  # a full cache hit needs neither the network nor its shapes
            n_forward = _run_missing_shards(paths, backbone, todo, pooling, l2, batch_size, torch_device, workers,
                                            precision, progress, max_pixels, max_feature_gb)
        n_shards = math.ceil(len(paths) / SHARD_SIZE)
        loaded = {layer: (e.finalize(n_shards) if layer in todo else e.load()) for layer, e in entries.items()}

    first: CachedFeatures = loaded[layers[0]]
    kept = np.flatnonzero(first.ok)
    features = {layer: c.features[kept] for layer, c in loaded.items()}
    failures = [(str(paths[i]), reason) for i, reason in sorted(first.failures.items())]
    return ExtractionResult(features, kept, failures, n_forward, time.perf_counter() - start,
                            {layer: e.key for layer, e in entries.items()})


def _description(backbone: Backbone, layer: str, pooling: str, l2: bool, precision: str) -> dict:
    return {"backbone": backbone.name, "weights": backbone.weights_id, "layer": layer,
            "preprocessing": backbone.preprocessing.as_dict(), "pooling": pooling, "l2": l2,
            "precision": precision, "transferlab_version": __version__}


def _check_memory(taps: torch.nn.Module, backbone: Backbone, precision: str, device: torch.device, pooling: str,
                  n: int, max_gb: float) -> dict[str, int]:
    """Feature size per layer, from one forward pass on a blank image (milliseconds, against ~0.3 s for
    tracing a second copy on the meta device); refuses features that would not fit in ``max_gb``."""
    size = backbone.preprocessing.crop_size
    with torch.inference_mode(), autocast(precision, device):
        outputs = taps(prepare_input(torch.zeros(1, 3, size, size, device=device), precision, device))
    shapes = {layer: tuple(output.shape[1:]) for layer, output in outputs.items()}
    dims = {layer: pooled_size(shape, pooling) for layer, shape in shapes.items()}
    gigabytes = n * sum(dims.values()) * 4 / 1e9
    if gigabytes > max_gb:
        sizes = ", ".join(f"{layer} {shapes[layer]} -> {dims[layer]:,} values" for layer in shapes)
        raise ConfigError(f"features would take {gigabytes:.1f} GB for {n} images ({sizes}), more than the "
                          f"{max_gb:g} GB limit; use --pooling avg|max|spp or raise --max-feature-gb")
    return dims


def _shard_batches(n: int, missing: list[int], batch_size: int) -> list[list[int]]:
    """Batches of image indices that never cross a shard boundary, over the missing shards only."""
    batches = []
    for shard in missing:
        indices = list(range(shard * SHARD_SIZE, min(n, (shard + 1) * SHARD_SIZE)))
        batches += [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    return batches


def _run_missing_shards(paths, backbone, todo: dict[str, CacheEntry], pooling, l2, batch_size, device, workers,
                        precision, progress, max_pixels, max_feature_gb) -> int:
    n = len(paths)
    n_shards = math.ceil(n / SHARD_SIZE)
    missing = [s for s in range(n_shards) if not all(e.has_shard(s) for e in todo.values())]
    batches = _shard_batches(n, missing, batch_size)
    dataset = ImagePathDataset(paths, transform=image_transform(backbone.preprocessing), max_pixels=max_pixels)
    workers = default_workers() if workers is None else workers
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate_skipping,
                        pin_memory=device.type == "cuda")
    # the tap service traces its own module: the caller's network keeps its modules and flags
    taps = prepare_model(make_taps(backbone.spec, backbone.model.to(device), list(todo)).eval(), precision, device)
    dims = _check_memory(taps, backbone, precision, device, pooling, n, max_feature_gb)
    buffers: dict[str, dict[int, np.ndarray]] = {layer: {} for layer in todo}
    failures: dict[int, str] = {}
    shard_done = {s: 0 for s in missing}
    n_forward = 0
    with progress_bar(sum(len(b) for b in batches), f"extract {backbone.name}", progress) as advance, \
            torch.inference_mode():
        for x, _, indices, failed in loader:
            failures.update(failed)
            count = len(failed)
            if x is not None:
                with autocast(precision, device):
                    outputs = taps(prepare_input(x.to(device, non_blocking=True), precision, device))
                for layer, output in outputs.items():
                    vectors = pool(output, pooling)
                    vectors = l2_normalize(vectors) if l2 else vectors
                    for index, row in zip(indices.tolist(), vectors.cpu().numpy()):
                        buffers[layer][index] = row
                count += len(indices)
                n_forward += len(indices)
            shard = (indices[0].item() if x is not None else failed[0][0]) // SHARD_SIZE
            shard_done[shard] += count
            advance(count)
            if shard_done[shard] == min(n, (shard + 1) * SHARD_SIZE) - shard * SHARD_SIZE:
                _save_shard(shard, n, todo, dims, buffers, failures)
    return n_forward


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
        entry.save_shard(shard, block, ok, shard_failures)
