"""The one registry of backbones, keyed by name (timm's ``register_model`` / torchvision's ``get_model``)."""

from __future__ import annotations

from typing import Callable

from ..errors import ConfigError, did_you_mean
from .spec import BackboneSpec

_REGISTRY: dict[str, BackboneSpec] = {}
_LAZY: dict[str, Callable[[], BackboneSpec]] = {}
_RESOLVERS: dict[str, Callable[[str], BackboneSpec]] = {}
_RESOLVED: dict[str, BackboneSpec] = {}  # lazy and prefixed specs built so far; never changes the listing


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone; registering the same name twice is an error."""
    if spec.name in _REGISTRY or spec.name in _LAZY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def register_lazy(name: str, factory: Callable[[], BackboneSpec]) -> None:
    """Add a backbone whose spec is built on first use (it needs an optional library, such as timm)."""
    if name in _REGISTRY or name in _LAZY:
        raise ValueError(f"backbone {name!r} is already registered")
    _LAZY[name] = factory


def register_prefix(prefix: str, resolver: Callable[[str], BackboneSpec]) -> None:
    """Resolve every name ``prefix/<model>`` on demand (used for ``timm/<name>``)."""
    if prefix in _RESOLVERS:
        raise ValueError(f"prefix {prefix!r} is already registered")
    _RESOLVERS[prefix] = resolver


def list_backbones() -> list[str]:
    """Names of the registered backbones (``timm/<name>`` entries are resolved on demand)."""
    return [*_REGISTRY, *_LAZY]


def get_spec(name: str) -> BackboneSpec:
    """Return the spec of a backbone, or raise :class:`ConfigError` listing the valid names."""
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
