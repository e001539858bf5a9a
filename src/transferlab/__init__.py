"""transferlab: transfer learning on image folders with pretrained CNNs.

The command line is ``transferlab`` (see the README); the curated library API is listed in ``__all__``.
"""

__version__ = "0.1.0"

from .backbones import BackboneSpec, Preprocessing, get_spec, layer_shapes, list_backbones, load_backbone, register
from .classify import LinearProbeModel, fit, load_model, run_linear
from .data import load_rgb, load_split
from .errors import (CacheError, ConfigError, DataError, ModelFileError, TrainingError, TransferlabError,
                     WeightsError)
from .features import FeatureExtractor, extract_features, extract_split
from .pipeline import ExtractionOptions, extract_dataset, features_for

__all__ = [
    "BackboneSpec", "CacheError", "ConfigError", "DataError", "ExtractionOptions", "FeatureExtractor",
    "LinearProbeModel", "ModelFileError", "Preprocessing", "TrainingError", "TransferlabError", "WeightsError",
    "__version__", "extract_dataset", "extract_features", "extract_split", "features_for", "fit", "get_spec",
    "layer_shapes", "list_backbones", "load_backbone", "load_model", "load_rgb", "load_split", "register",
    "run_linear",
]
