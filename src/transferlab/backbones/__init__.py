"""The backbone registry: every network transferlab can cut, keyed by name.

The registry's first use registers the torchvision entries, ``digits_cnn``, ``efficientnet_lite0`` (built on
first use: it needs timm) and the ``timm/<name>`` resolver. Add a backbone by calling :func:`register` with a
:class:`BackboneSpec`; each :class:`WeightsEntry` of a spec owns its preprocessing and class names.

The names below are imported on first access (PEP 562), so ``import transferlab.backbones`` imports no torch;
:mod:`transferlab.backbones.catalog` lists the built-in entries and their cut points without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# public name -> the submodule defining it
_EXPORTS = {
    "get_spec": "registry", "list_backbones": "registry", "register": "registry",
    "PREPROCESSING_MODES": "spec", "BackboneSpec": "spec", "Preprocessing": "spec", "WeightsEntry": "spec",
    "Backbone": "loading", "load_backbone": "loading", "read_state_dict": "loading",
    "GridAxes": "layers", "LayerRef": "layers", "grid_axes": "layers", "resolve_layer": "layers",
    "resolve_layers": "layers",
    "depends_on": "taps", "graph_nodes": "taps", "hook_point": "taps", "layer_shapes": "taps", "make_taps": "taps",
}

__all__ = sorted(_EXPORTS, key=str.lower)

if TYPE_CHECKING:
    from .layers import GridAxes, LayerRef, grid_axes, resolve_layer, resolve_layers
    from .loading import Backbone, load_backbone, read_state_dict
    from .registry import get_spec, list_backbones, register
    from .spec import PREPROCESSING_MODES, BackboneSpec, Preprocessing, WeightsEntry
    from .taps import depends_on, graph_nodes, hook_point, layer_shapes, make_taps


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
