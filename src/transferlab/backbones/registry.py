"""The one registry of backbones, keyed by name (timm's ``register_model`` / torchvision's ``get_model``)."""

from __future__ import annotations

from typing import Callable

from ..errors import ConfigError, did_you_mean
from .spec import BackboneSpec

_REGISTRY: dict[str, BackboneSpec] = {}
_RESOLVERS: dict[str, Callable[[str], BackboneSpec]] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone; registering the same name twice is an error."""
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def register_prefix(prefix: str, resolver: Callable[[str], BackboneSpec]) -> None:
    """Resolve every name ``prefix/<model>`` on demand (used for ``timm/<name>``)."""
    if prefix in _RESOLVERS:
        raise ValueError(f"prefix {prefix!r} is already registered")
    _RESOLVERS[prefix] = resolver


def list_backbones() -> list[str]:
    """Names of the registered backbones (``timm/<name>`` entries are resolved on demand)."""
    return list(_REGISTRY)


def get_spec(name: str) -> BackboneSpec:
    """Return the spec of a backbone, or raise :class:`ConfigError` listing the valid names."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    prefix, sep, rest = name.partition("/")
    if sep and prefix in _RESOLVERS:
        spec = _RESOLVERS[prefix](rest)
        _REGISTRY[name] = spec
        return spec
    prefixes = "".join(f", {p}/<name>" for p in _RESOLVERS)
    raise ConfigError(
        f"unknown backbone {name!r}; expected one of {', '.join(_REGISTRY)}{prefixes}."
        f"{did_you_mean(name, list(_REGISTRY))} Run `transferlab backbones` for the list"
    )
