"""Feature extraction: a backbone cut at named layers, pooled, L2-normalised, cached on disk."""

from .cache import CacheEntry, default_cache_dir
from .extract import ExtractionResult, extract_features
from .pooling import POOLINGS, l2_normalize, pool, pooled_size
from .precision import PRECISIONS, cpu_supports_bf16
from .split import SplitFeatures, extract_split
from .transformer import FeatureExtractor, probe_pipeline

__all__ = [
    "POOLINGS", "PRECISIONS", "CacheEntry", "ExtractionResult", "FeatureExtractor", "SplitFeatures",
    "cpu_supports_bf16", "default_cache_dir", "extract_features", "extract_split", "l2_normalize", "pool",
    "pooled_size", "probe_pipeline",
]
