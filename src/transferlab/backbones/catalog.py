"""A static catalog of the built-in registry entries: the listing and every cut point's shape, without torch.

Building a spec imports torch and torchvision, and a cut point's output shape needs the network traced, so
``transferlab backbones`` and ``transferlab layers vgg16`` would spend seconds on what never changes between
runs. The catalog is that information, generated from the live registry into ``catalog.json``::

    python -m transferlab.backbones.catalog

It cannot drift: ``tests/core/test_startup.py`` compares it with the live registry entry by entry and fails
with the command above when they differ, and it is used only with the versions of torch, torchvision and timm
it was generated with (read from their ``version.py`` without importing them). The listing comes from the
catalog only while the live registry is unused in this process (nothing else can have been registered yet);
otherwise, for ``timm/<name>``, for ``layers --all`` or with other versions, the live registry answers as
before (and imports torch). Looking a backbone up never changes the listing, either way.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .registry import builtins_loaded
from .spec import Preprocessing

# the installed packages whose versions the catalog's content depends on (the source is checked by the test)
PACKAGES = ("torch", "torchvision", "timm")
DATA_FILE = Path(__file__).with_name("catalog.json")
REGENERATE = "python -m transferlab.backbones.catalog"


@dataclass(frozen=True)
class WeightsInfo:
    """One weights entry as the listing shows it."""

    tag: str
    preprocessing: Preprocessing
    classes: int
    trained_on: str


@dataclass(frozen=True)
class LayerInfo:
    """One cut point: its graph node, output shape at the default input size and feature sizes."""

    name: str
    node: str
    shape: tuple[int, ...]
    features: int  # flattened (pooling none)
    avg_pooled: int | None  # average-pooled over space or tokens; None for a vector


@dataclass(frozen=True)
class BackboneInfo:
    """A registry entry as ``transferlab backbones`` and ``transferlab layers`` show it.

    ``error`` is set (and nothing else) for an entry whose spec cannot be built here (it needs an extra).
    """

    name: str
    description: str = ""
    default_layer: str = ""
    preprocessing: Preprocessing | None = None
    weights: tuple[WeightsInfo, ...] = ()
    layers: tuple[LayerInfo, ...] | None = None  # None: not computed (live listing)
    error: str | None = None


# ------------------------------------------------------------------ from the live registry (imports torch)
def describe(spec, with_layers: bool = True) -> BackboneInfo:
    """The :class:`BackboneInfo` of a live spec; ``with_layers`` traces the network (meta device) for shapes."""
    layers = None
    if with_layers:
        from ..features.pooling import pooled_size
        from .taps import layer_shapes

        shapes = layer_shapes(spec)
        layers = tuple(LayerInfo(name, node, tuple(shapes[name]), pooled_size(shapes[name], "none"),
                                 pooled_size(shapes[name], "avg") if len(shapes[name]) > 1 else None)
                       for name, node in spec.cut_points.items())
    return BackboneInfo(
        name=spec.name, description=spec.description, default_layer=spec.default_layer,
        preprocessing=spec.preprocessing, layers=layers,
        weights=tuple(WeightsInfo(w.tag, w.preprocessing, len(w.categories), w.trained_on) for w in spec.weights))


def live_listing(with_layers: bool = False) -> list[BackboneInfo]:
    """Every registered backbone, described from the live registry."""
    from ..errors import ConfigError
    from .registry import get_spec, list_backbones

    infos = []
    for name in list_backbones():
        try:
            spec = get_spec(name)
        except ConfigError as error:  # an entry that needs an optional extra
            infos.append(BackboneInfo(name=name, error=str(error)))
            continue
        infos.append(describe(spec, with_layers))
    return infos


# ------------------------------------------------------------------ the stored catalog (no torch)
def _installed_version(package: str) -> str | None:
    """``package.__version__`` read from its ``version.py`` without importing it (None if not installed)."""
    found = importlib.util.find_spec(package)
    if found is None or not found.origin:
        return None
    try:
        text = (Path(found.origin).parent / "version.py").read_text()
        return re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M).group(1)
    except (OSError, AttributeError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(package)
        except PackageNotFoundError:
            return None


def fingerprint() -> str:
    """The installed versions the catalog depends on (``torch=2.14.1+cu130 torchvision=... timm=...``)."""
    return " ".join(f"{package}={_installed_version(package)}" for package in PACKAGES)


def _to_data(info: BackboneInfo) -> dict:
    if info.error is not None:
        return {"name": info.name, "error": info.error}
    return {"name": info.name, "description": info.description, "default_layer": info.default_layer,
            "preprocessing": info.preprocessing.as_dict(),
            "weights": [{"tag": w.tag, "preprocessing": w.preprocessing.as_dict(), "classes": w.classes,
                         "trained_on": w.trained_on} for w in info.weights],
            "layers": [(l.name, l.node, l.shape, l.features, l.avg_pooled) for l in info.layers]}


def _from_data(data: dict) -> BackboneInfo:
    if "error" in data:
        return BackboneInfo(name=data["name"], error=data["error"])
    return BackboneInfo(
        name=data["name"], description=data["description"], default_layer=data["default_layer"],
        preprocessing=Preprocessing.from_dict(data["preprocessing"]),
        weights=tuple(WeightsInfo(w["tag"], Preprocessing.from_dict(w["preprocessing"]), w["classes"],
                                  w["trained_on"]) for w in data["weights"]),
        layers=tuple(LayerInfo(name, node, tuple(shape), features, avg)
                     for name, node, shape, features, avg in data["layers"]))


def stored() -> tuple[str | None, list[dict]]:
    """The stored catalog: (its fingerprint, its entries as data); (None, []) when there is none."""
    try:
        data = json.loads(DATA_FILE.read_text())
    except (OSError, ValueError):
        return None, []
    return data["fingerprint"], data["backbones"]


_CURRENT: dict[str, list[BackboneInfo] | None] = {}


def catalog() -> list[BackboneInfo] | None:
    """The built-in entries from the stored catalog, or None when it does not match this installation."""
    if "entries" not in _CURRENT:
        stamp, entries = stored()
        _CURRENT["entries"] = [_from_data(e) for e in entries] if stamp is not None and stamp == fingerprint() \
            else None
    return _CURRENT["entries"]


def listing() -> list[BackboneInfo]:
    """What ``transferlab backbones`` shows: the catalog while the live registry is unused, else the registry."""
    entries = None if builtins_loaded() else catalog()
    return entries if entries is not None else live_listing()


def layers_of(name: str) -> tuple[LayerInfo, ...] | None:
    """Cut points of a built-in entry from the catalog, or None (not catalogued here: ask the registry)."""
    info = next((e for e in catalog() or () if e.name == name), None)
    return None if info is None or info.error is not None else info.layers


# ------------------------------------------------------------------ generation
def generate() -> tuple[str, list[dict]]:
    """(fingerprint, entries as data) of the live registry, every cut point's shape included."""
    entries = [_to_data(info) for info in live_listing(with_layers=True)]
    return fingerprint(), json.loads(json.dumps(entries))  # as stored: tuples become lists


def render(stamp: str, entries: list[dict]) -> str:
    return json.dumps({"generated_by": REGENERATE, "fingerprint": stamp, "backbones": entries}, indent=1) + "\n"


def write(path: Path = DATA_FILE) -> Path:
    """Regenerate the stored catalog from the live registry."""
    path.write_text(render(*generate()))
    _CURRENT.clear()
    return path


if __name__ == "__main__":
    written = write()
    print(f"wrote {written} ({len(stored()[1])} entries)", file=sys.stderr)
