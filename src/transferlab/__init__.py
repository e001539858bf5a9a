"""transferlab: transfer learning on image folders with pretrained CNNs.

The command line is ``transferlab`` (see the README); the curated library API is listed in ``__all__``.
Its names are imported on first access (PEP 562), so ``import transferlab`` (and the command line's start-up)
pays for torch, torchvision and scikit-learn only when something that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import (CacheError, ConfigError, DataError, ModelFileError, TrainingError, TransferlabError,
                     WeightsError)

__version__ = "0.1.0"

# public name -> the module defining it (relative to this package)
_EXPORTS = {
    **dict.fromkeys(("BackboneSpec", "Preprocessing", "get_spec", "layer_shapes", "list_backbones", "load_backbone",
                     "register"), ".backbones"),
    **dict.fromkeys(("LinearProbeModel", "fit", "load_model", "run_linear"), ".classify"),
    **dict.fromkeys(("load_rgb", "load_split"), ".data"),
    **dict.fromkeys(("FeatureExtractor", "extract_features", "extract_split"), ".features"),
    **dict.fromkeys(("ExtractionOptions", "extract_dataset", "features_for"), ".pipeline"),
}

__all__ = [
    "BackboneSpec", "CacheError", "ConfigError", "DataError", "ExtractionOptions", "FeatureExtractor",
    "LinearProbeModel", "ModelFileError", "Preprocessing", "TrainingError", "TransferlabError", "WeightsError",
    "__version__", "extract_dataset", "extract_features", "extract_split", "features_for", "fit", "get_spec",
    "layer_shapes", "list_backbones", "load_backbone", "load_model", "load_rgb", "load_split", "register",
    "run_linear",
]

if TYPE_CHECKING:
    from .backbones import BackboneSpec, Preprocessing, get_spec, layer_shapes, list_backbones, load_backbone, register
    from .classify import LinearProbeModel, fit, load_model, run_linear
    from .data import load_rgb, load_split
    from .features import FeatureExtractor, extract_features, extract_split
    from .pipeline import ExtractionOptions, extract_dataset, features_for


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
