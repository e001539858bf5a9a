"""Build a registry backbone with its weights: ``imagenet`` (the library's own), ``none`` or a file."""

from __future__ import annotations

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
    """A built network in eval mode with everything needed to feed it and name its outputs.

    ``preprocessing`` and ``categories`` belong to the weights: a pretrained entry's own, or for random
    weights and weights files those of ``preprocessing_source`` (the default entry unless told another).
    """

    model: nn.Module
    spec: BackboneSpec
    weights_id: str
    preprocessing: Preprocessing
    categories: tuple[str, ...] = ()
    preprocessing_source: str = ""

    @property
    def name(self) -> str:
        return self.spec.name


def load_backbone(name: str, weights: str | Path = "imagenet", *, seed: int = 0,
                  num_classes: int | None = None, preprocessing_mode: str = "weights",
                  preprocessing_of: str | None = None) -> Backbone:
    """Build backbone ``name`` in eval mode.

    Parameters
    ----------
    weights : ``"imagenet"`` (the default weights entry), a weights tag (``IMAGENET1K_V2``, ``in1k``: see
        ``transferlab backbones --weights``), ``"none"`` (random, seeded) or the path of a state dict /
        checkpoint (``.pth``, ``.pt``, ``.safetensors``) for this architecture; ``PATH@TAG`` (or
        ``none@TAG``) takes the preprocessing and class names of weights entry ``TAG``.
    num_classes : size of the output layer for random or file weights (default: the spec's).
    preprocessing_mode : ``"weights"`` (resize + centre crop) or ``"squash"`` (the assignment's resize).
    preprocessing_of : the weights tag whose preprocessing and class names random or file weights use
        (default: the default entry's).
    """
    spec = get_spec(name)
    weights = str(weights)
    head, at, tail = weights.rpartition("@")
    if at and spec.weights_entry(tail) is not None:
        weights, preprocessing_of = head, preprocessing_of or tail
    entry = spec.weights_entry(weights) if weights != "none" else None
    source = spec.weights_entry(preprocessing_of) if preprocessing_of else (entry or spec.default_weights)
    if preprocessing_of and source is None:
        raise WeightsError(f"{spec.name} has no weights tag {preprocessing_of!r} to take preprocessing from; "
                           f"expected one of {_tags(spec)}")
    if entry is not None:
        if num_classes is not None:
            raise WeightsError("num_classes cannot be changed with pretrained weights; fine-tuning replaces the head")
        model, weights_id = entry.load(), f"imagenet:{entry.key or spec.name + '.' + entry.tag}"
    elif weights == "none":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = spec.build(num_classes=num_classes)
        weights_id = f"none:seed={seed}"
    elif weights == "imagenet" or _looks_like_tag(weights):
        if not spec.weights:
            raise WeightsError(f"{spec.name} has no pretrained weights entry; pass --weights PATH (e.g. the file "
                               "written by `transferlab demo --task digits`) or --weights none")
        raise WeightsError(f"{spec.name} has no weights {weights!r}; expected imagenet, none, one of {_tags(spec)}, "
                           "or the path of a .pth/.pt/.safetensors file")
    else:
        path = Path(weights).expanduser()
        state = read_state_dict(path)
        model = spec.build(num_classes=num_classes if num_classes is not None else _head_size(state, spec))
        load_state_dict_exactly(model, state, path, spec.name)
        weights_id = f"file:{file_digest(path)}"
    model.eval()
    preprocessing = (source.preprocessing if source is not None else spec.preprocessing).with_mode(preprocessing_mode)
    categories = source.categories if source is not None else spec.categories
    return Backbone(model=model, spec=spec, weights_id=weights_id, preprocessing=preprocessing,
                    categories=categories, preprocessing_source=source.tag if source is not None else "")


def _tags(spec: BackboneSpec) -> str:
    return ", ".join(w.tag for w in spec.weights) or "(none)"


def _looks_like_tag(weights: str) -> bool:
    """A bare word (``IMAGENET1K_V2``) rather than a file path."""
    return Path(weights).suffix not in WEIGHT_SUFFIXES and "/" not in weights and not Path(weights).exists()


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
    return int(weight.shape[0]) if weight is not None and weight.ndim in (2, 4) else None  # 4: 1x1-conv head


def load_state_dict_exactly(model: nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    """Load a state dict into ``model`` exactly; a mismatch says in one line what the file holds against
    what the model expects (key prefixes and tensor counts, or the mismatched keys) and what to do."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or shapes):
        model.load_state_dict(state)
        return
    shared = len(expected) - len(missing)
    if shared < len(expected) // 2:  # mostly other names: another naming or another architecture
        raise WeightsError(
            f"weights file {path} holds {len(state)} tensors under key prefixes {_prefixes(state)}; {name} expects "
            f"{len(expected)} under {_prefixes(expected)} ({shared} names in common): the file uses another naming "
            "or architecture. Rename its keys to the model's (docs/core.md, 'Weights in another naming') or pass "
            "the --backbone it was saved from")

    def show(items: list[str]) -> str:
        return ", ".join(items[:3]) + (f" (+{len(items) - 3} more)" if len(items) > 3 else "")

    parts = [f"missing keys: {show(missing)}" if missing else "",
             f"unexpected keys: {show(unexpected)}" if unexpected else "",
             f"shape mismatches: {show(shapes)}" if shapes else ""]
    raise WeightsError(f"weights file {path} does not fit architecture {name} ({len(state)} tensors against "
                       f"{len(expected)}): " + "; ".join(p for p in parts if p)
                       + ". Pass the --backbone it was saved from, or fix the keys listed")


def _prefixes(state: dict, shown: int = 4) -> str:
    """The most common first key components, with counts: ``_blocks (256), _bn0 (5), ...``."""
    from collections import Counter

    counts = Counter(key.split(".")[0] for key in state).most_common()
    text = ", ".join(f"{prefix} ({n})" for prefix, n in counts[:shown])
    return text + (f" +{len(counts) - shown} more" if len(counts) > shown else "")
