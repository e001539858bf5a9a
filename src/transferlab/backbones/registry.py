"""The one registry of backbones, keyed by name (timm's ``register_model`` / torchvision's ``get_model``).

The built-in entries (``digits_cnn``, torchvision's networks, ``efficientnet_lite0`` and the ``timm/<name>``
resolver) register themselves when their modules are imported, which imports torch; that happens on the
first call of any function here, so importing this module (or :mod:`transferlab.backbones`) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Callable

from ..errors import ConfigError, did_you_mean
from .spec import BackboneSpec

_REGISTRY: dict[str, BackboneSpec] = {}
_LAZY: dict[str, Callable[[], BackboneSpec]] = {}
_RESOLVERS: dict[str, Callable[[str], BackboneSpec]] = {}
_RESOLVED: dict[str, BackboneSpec] = {}  # lazy and prefixed specs built so far; never changes the listing

# Modules defining the built-in entries, in the order the listing shows them. Each registers its entries in
# ``register_builtins()`` (timm_zoo on import), called here only, so the order never depends on which module
# some caller imported first.
BUILTIN_MODULES = ("digits_cnn", "timm_zoo", "torchvision_zoo")
_BUILTINS = {"state": "absent"}  # absent -> loading -> loaded


def _load_builtins() -> None:
    """Register the built-in entries (once; a no-op while they are registering). Imports torch."""
    if _BUILTINS["state"] != "absent":
        return
    _BUILTINS["state"] = "loading"
    before = [dict(d) for d in (_REGISTRY, _LAZY, _RESOLVERS)]
    try:
        for name in BUILTIN_MODULES:
            module = importlib.import_module(f"{__package__}.{name}")
            if hasattr(module, "register_builtins"):
                module.register_builtins()
    except BaseException:  # leave the registry as it was, so that the next call tries again
        for table, saved in zip((_REGISTRY, _LAZY, _RESOLVERS), before):
            table.clear()
            table.update(saved)
        _BUILTINS["state"] = "absent"
        raise
    _BUILTINS["state"] = "loaded"


def builtins_loaded() -> bool:
    """Whether the built-in entries are registered yet (the live registry has been used in this process)."""
    return _BUILTINS["state"] == "loaded"


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone; registering the same name twice is an error."""
    _load_builtins()
    if spec.name in _REGISTRY or spec.name in _LAZY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def register_lazy(name: str, factory: Callable[[], BackboneSpec]) -> None:
    """Add a backbone whose spec is built on first use (it needs an optional library, such as timm)."""
    _load_builtins()
    if name in _REGISTRY or name in _LAZY:
        raise ValueError(f"backbone {name!r} is already registered")
    _LAZY[name] = factory


def register_prefix(prefix: str, resolver: Callable[[str], BackboneSpec]) -> None:
    """Resolve every name ``prefix/<model>`` on demand (used for ``timm/<name>``)."""
    _load_builtins()
    if prefix in _RESOLVERS:
        raise ValueError(f"prefix {prefix!r} is already registered")
    _RESOLVERS[prefix] = resolver


def list_backbones() -> list[str]:
    """Names of the registered backbones (``timm/<name>`` entries are resolved on demand)."""
    _load_builtins()
    return [*_REGISTRY, *_LAZY]


def get_spec(name: str) -> BackboneSpec:
    """Return the spec of a backbone, or raise :class:`ConfigError` listing the valid names."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name not in _RESOLVED:
        prefix, sep, rest = name.partition("/")
        if name in _LAZY:
            _RESOLVED[name] = _LAZY[name]()
        elif sep and prefix in _RESOLVERS:
            _RESOLVED[name] = _RESOLVERS[prefix](rest)
        else:
            prefixes = "".join(f", {p}/<name>" for p in _RESOLVERS)
            raise ConfigError(
                f"unknown backbone {name!r}; expected one of {', '.join(list_backbones())}{prefixes}."
                f"{did_you_mean(name, list_backbones())} Run `transferlab backbones` for the list"
            )
    return _RESOLVED[name]
