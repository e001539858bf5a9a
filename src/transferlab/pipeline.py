"""Library verbs behind the commands: a dataset folder -> features (and, in classify, -> a classifier).

``ExtractionOptions`` gathers every data and extraction option so commands and studies pass one object.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ._utils import atomic_write_bytes
from .backbones import Backbone, load_backbone, resolve_layer
from .data import DEFAULT_MAX_PIXELS, DatasetSplit, load_split
from .features import ExtractionResult, SplitFeatures, extract_split
from .features.extract import DEFAULT_MAX_FEATURE_GB
from .features.memmap import mapped_file
from .features.distributed import ExtractionGroup
from .runs import Run


@dataclass
class ExtractionOptions:
    backbone: str = "vgg16"
    weights: str = "imagenet"
    layers: list[str] = field(default_factory=list)  # empty: the backbone's default layer
    train_per_class: int | None = 100
    test_fraction: float | None = None
    seed: int = 0
    preprocess: str = "weights"
    pooling: str = "none"
    l2: bool = True
    batch_size: int | None = None  # None: 8 on CPU, 32 on a GPU
    workers: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    engine: str = "torch"  # torch | openvino (features/engines.py)
    cache_dir: Path | None = None
    use_cache: bool = True
    progress: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_feature_gb: float = DEFAULT_MAX_FEATURE_GB  # past it, features stay on disk (memory-mapped), fitted out of core
    grayscale: str = "duplicate"  # duplicate | sum-filters (backbones/grayscale.py, report 002 Q9)

    def extraction_kwargs(self) -> dict:
        return {"pooling": self.pooling, "l2": self.l2, "batch_size": self.batch_size, "workers": self.workers,
                "device": self.device, "precision": self.precision, "engine": self.engine, "cache_dir": self.cache_dir,
                "use_cache": self.use_cache, "progress": self.progress, "max_pixels": self.max_pixels,
                "max_feature_gb": self.max_feature_gb}


@dataclass
class DatasetFeatures:
    out: Path | None
    split: DatasetSplit
    backbone: Backbone
    features: dict[str, SplitFeatures]
    extraction: ExtractionResult

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return next(iter(self.features.values())).skipped


def features_for(data: Path | str, options: ExtractionOptions, backbone: Backbone | None = None,
                 seed: int | None = None) -> DatasetFeatures:
    """Split ``data`` and extract (cached) features; no files are written."""
    backbone = backbone or load_backbone(options.backbone, options.weights, seed=options.seed,
                                         preprocessing_mode=options.preprocess)
    backbone = _grayscale(backbone, options)
    layers = options.layers or [backbone.spec.default_layer]
    for layer in layers:  # fail on a bad layer name before scanning the data
        resolve_layer(backbone.spec, layer, backbone.model)
    split = load_split(data, train_per_class=options.train_per_class, test_fraction=options.test_fraction,
                       seed=options.seed if seed is None else seed, max_pixels=options.max_pixels)
    features, extraction = extract_split(split, backbone, layers, **options.extraction_kwargs())
    return DatasetFeatures(None, split, backbone, features, extraction)


def _grayscale(backbone: Backbone, options: ExtractionOptions) -> Backbone:
    """``--grayscale sum-filters``: a 1-channel copy of the network (the caller's is left as it is)."""
    from .backbones.grayscale import EXTRACTION_MODES, check_mode, grayscale_backbone, input_channels

    if check_mode(options.grayscale, EXTRACTION_MODES) == "duplicate" or input_channels(backbone.preprocessing) == 1:
        return backbone
    import copy
    from dataclasses import replace

    return grayscale_backbone(replace(backbone, model=copy.deepcopy(backbone.model)), options.grayscale,
                              EXTRACTION_MODES)


def extract_dataset(data: Path | str, out: Path | str | None, options: ExtractionOptions | dict
                    ) -> DatasetFeatures | None:
    """``transferlab extract``: features.npz (one per layer when several), config.json, skipped.txt.

    Under torchrun the ranks share the extraction; rank 0 writes the run, the others return None."""
    options = ExtractionOptions(**options) if isinstance(options, dict) else options
    call = {"data": str(data), "options": options}
    group = ExtractionGroup(options.device)
    if not group.is_main:
        return group.help(lambda: features_for(data, options))
    with Run("extract", "transferlab.pipeline:extract_dataset", call, out, inputs=(data,)) as run:
        with group:
            result = features_for(data, options)
        result.out = run.out
        run.record(data=str(data), **run_config(options, result))
        log_extraction(run.log, result)
        for layer, feats in result.features.items():
            feats.save(run.out / ("features.npz" if len(result.features) == 1 else f"features_{layer}.npz"))
        write_skipped(run.out, result.skipped)
    return result


def run_config(options: ExtractionOptions, result: DatasetFeatures) -> dict:
    """The resolved configuration of a run (what produced the features)."""
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}
    from ._utils import resolve_device
    from .features.engines import engine_device

    config.update(layers=list(result.features), weights_id=result.backbone.weights_id,
                  resolved_device=str(resolve_device(engine_device(options.engine, options.device))),
                  preprocessing_source=result.backbone.preprocessing_source,
                  preprocessing=result.backbone.preprocessing.as_dict(), split=result.split.describe(),
                  cache_keys=result.extraction.cache_keys)
    return config


def log_extraction(log, result: DatasetFeatures) -> None:
    """Record what was extracted (and what was skipped) in the run's log."""
    ex = result.extraction
    log.info("%s (%s) layers %s: %s", result.backbone.name, result.backbone.weights_id, ", ".join(result.features),
             "all from cache" if ex.from_cache else f"{ex.n_forward} images forwarded in {ex.seconds:.1f} s")
    if ex.per_rank_forward is not None:
        log.info("torchrun: %d ranks forwarded %s images (rank 0 first)", len(ex.per_rank_forward), ex.per_rank_forward)
    mapped = [layer for layer, f in result.features.items() if mapped_file(f.X_train) is not None]
    if mapped:
        gigabytes = sum(f.X_train.nbytes + f.X_test.nbytes for f in result.features.values()) / 1e9
        log.info("features of %s take %.3g GB, more than --max-feature-gb: kept on disk, memory-mapped from the "
                 "cache; a linear probe trains on them out of core (the torch solver)", ", ".join(mapped), gigabytes)
    for path, reason in result.skipped:  # a run's logger writes a non-UTF-8 name's bytes as \xNN (runs.py)
        log.warning("skipped %s: %s", path, reason)


def write_skipped(out: Path, skipped: list[tuple[str, str]]) -> None:
    text = "".join(f"{path}\t{reason}\n" for path, reason in skipped)
    atomic_write_bytes(Path(out) / "skipped.txt", text.encode(errors="surrogateescape"))  # exact file names
