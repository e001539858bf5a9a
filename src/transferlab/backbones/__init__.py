"""The backbone registry: every network transferlab can cut, keyed by name.

Importing this package registers the torchvision entries, ``digits_cnn``, ``efficientnet_lite0`` (built on
first use: it needs timm) and the ``timm/<name>`` resolver. Add a backbone by calling :func:`register` with a
:class:`BackboneSpec`; each :class:`WeightsEntry` of a spec owns its preprocessing and class names.
"""

from . import digits_cnn, timm_zoo, torchvision_zoo  # noqa: F401  (registration side effects)
from .loading import Backbone, load_backbone, read_state_dict
from .registry import get_spec, list_backbones, register
from .spec import PREPROCESSING_MODES, BackboneSpec, Preprocessing, WeightsEntry
from .taps import graph_nodes, layer_shapes, make_taps, resolve_layer

__all__ = [
    "PREPROCESSING_MODES", "Backbone", "BackboneSpec", "Preprocessing", "get_spec", "graph_nodes",
    "layer_shapes", "list_backbones", "load_backbone", "make_taps", "read_state_dict", "register",
    "resolve_layer", "WeightsEntry",
]
