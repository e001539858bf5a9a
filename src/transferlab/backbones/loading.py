"""Build a registry backbone with its weights: ``imagenet`` (the library's own), ``none`` or a file."""

from __future__ import annotations

import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .._utils import file_digest
from ..errors import WeightsError
from .registry import get_spec
from .spec import BackboneSpec, Preprocessing

WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors")


@dataclass
class Backbone:
    """A built network in eval mode with everything needed to feed it and name its outputs."""

    model: nn.Module
    spec: BackboneSpec
    weights_id: str
    preprocessing: Preprocessing

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def categories(self) -> tuple[str, ...]:
        return self.spec.categories


def load_backbone(name: str, weights: str | Path = "imagenet", *, seed: int = 0,
                  num_classes: int | None = None, preprocessing_mode: str = "weights") -> Backbone:
    """Build backbone ``name`` in eval mode.

    Parameters
    ----------
    weights : ``"imagenet"`` (download/cache the library's weights), ``"none"`` (random, seeded) or the
        path of a state dict / checkpoint (``.pth``, ``.pt``, ``.safetensors``) for this architecture.
    num_classes : size of the output layer for random or file weights (default: the spec's).
    preprocessing_mode : ``"weights"`` (resize + centre crop) or ``"squash"`` (the assignment's resize).
    """
    spec = get_spec(name)
    weights = str(weights)
    if weights == "imagenet":
        if num_classes is not None:
            raise WeightsError("num_classes cannot be changed with --weights imagenet; fine-tuning replaces the head")
        model, weights_id = _pretrained(spec), f"imagenet:{spec.weights}"
    elif weights == "none":
        torch.manual_seed(seed)
        model, weights_id = spec.build(num_classes=num_classes), f"none:seed={seed}"
    else:
        path = Path(weights).expanduser()
        state = read_state_dict(path)
        model = spec.build(num_classes=num_classes if num_classes is not None else _head_size(state, spec))
        load_state_dict_exactly(model, state, path, spec.name)
        weights_id = f"file:{file_digest(path)}"
    model.eval()
    return Backbone(model=model, spec=spec, weights_id=weights_id,
                    preprocessing=spec.preprocessing.with_mode(preprocessing_mode))


def _pretrained(spec: BackboneSpec) -> nn.Module:
    if spec.family == "timm":
        return _timm_pretrained(spec)
    if spec.weights is None:
        raise WeightsError(
            f"{spec.name} has no downloadable weights; pass --weights PATH (e.g. the file written by "
            "`transferlab demo`) or --weights none for random initialisation"
        )
    from torchvision.models import get_model, get_weight

    enum = get_weight(spec.weights)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    try:
        return get_model(spec.name, weights=enum)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise WeightsError(
            f"ImageNet weights for {spec.name} are not cached (expected {cached}) and could not be "
            f"downloaded ({exc.__class__.__name__}); connect once to download them, copy {Path(enum.url).name} "
            "there, pass --weights PATH to a local file, or --weights none for random weights"
        ) from exc


def _timm_pretrained(spec: BackboneSpec) -> nn.Module:
    import timm

    model_name = spec.name.split("/", 1)[1]
    try:
        return timm.create_model(model_name, pretrained=True)
    except Exception as exc:  # hub errors come in many classes (offline, missing file, HTTP)
        raise WeightsError(
            f"pretrained weights for {spec.name} could not be loaded from the Hugging Face hub or its cache "
            f"({exc.__class__.__name__}); connect once to download them, pass --weights PATH, "
            "or --weights none for random weights"
        ) from exc


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely (no code execution) from .pth/.pt (weights_only) or .safetensors."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; expected a {'/'.join(WEIGHT_SUFFIXES)} file, "
                           "or --weights imagenet / none")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise WeightsError(f"weights file {path} has suffix {path.suffix!r}; expected one of "
                           f"{', '.join(WEIGHT_SUFFIXES)}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read weights file {path} safely ({exc.__class__.__name__}: {exc}); "
                           "expected a plain state dict saved with torch.save or safetensors") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _head_size(state: dict[str, torch.Tensor], spec: BackboneSpec) -> int | None:
    weight = state.get(f"{spec.head}.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim == 2 else None


def load_state_dict_exactly(model: nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    """Load a state dict into ``model`` exactly; a mismatch names the missing/unexpected/mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        def show(items: list[str]) -> str:
            return ", ".join(items[:4]) + (f" (+{len(items) - 4} more)" if len(items) > 4 else "")

        parts = [f"missing keys: {show(missing)}" if missing else "",
                 f"unexpected keys: {show(unexpected)}" if unexpected else "",
                 f"shape mismatches: {show(shapes)}" if shapes else ""]
        raise WeightsError(f"weights file {path} does not fit architecture {name}: "
                           + "; ".join(p for p in parts if p) + ". Pass --backbone matching the file")
    model.load_state_dict(state)
