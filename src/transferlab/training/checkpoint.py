"""Resumable training: atomic checkpoints holding model, optimiser, scheduler, RNG state and epoch.

Checkpoints are loaded with ``torch.load(weights_only=True)``: they hold tensors and plain Python
containers only, so loading one never executes code.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._utils import atomic_save
from ..errors import TrainingError


def capture_rng_state() -> dict[str, Any]:
    """Snapshot Python, NumPy and torch (CPU and CUDA) random states as weights-only-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot taken by :func:`capture_rng_state`."""
    random.setstate(_as_tuple(state["python"]))
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_as_tuple(v) for v in value)
    return value


def save_checkpoint(path: Path | str, **state: Any) -> None:
    """Atomically save a checkpoint (a dict of state dicts, tensors and plain values)."""
    atomic_save(Path(path), lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, refusing anything that is not plain data."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"no checkpoint at {path}; start without --resume or point to the run folder")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file, foreign pickle...
        raise TrainingError(f"checkpoint {path} cannot be loaded safely ({exc.__class__.__name__}: {exc})") from exc


def check_checkpoint(saved: Any, path: Path | str, required: tuple[str, ...]) -> dict[str, Any]:
    """Refuse a checkpoint that lacks one of ``required`` or holds a non-finite floating-point tensor
    (a damaged or hand-edited file), in one line, before anything is restored from it."""
    if not isinstance(saved, dict):
        raise TrainingError(f"checkpoint {path} is not a transferlab checkpoint (a {type(saved).__name__}); "
                            "start again without --resume or choose another --out")
    missing = [key for key in required if key not in saved]
    if missing:
        raise TrainingError(f"checkpoint {path} lacks {', '.join(missing)}: it is damaged or from another "
                            "program; start again without --resume or choose another --out")
    bad = [name for name, tensor in _tensors(saved) if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise TrainingError(f"checkpoint {path} holds non-finite values in {', '.join(bad[:3])}"
                            f"{' and more' if len(bad) > 3 else ''}; it is damaged: start again without --resume")
    return saved


def _tensors(value: Any, prefix: str = ""):
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tensors(item, f"{prefix}[{i}]")


def restore_state(obj: Any, state: Any, path: Path | str, name: str) -> None:
    """``obj.load_state_dict(state)``, a mismatch (another network, class count or optimiser) as one line."""
    try:
        obj.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        reason = " ".join(str(exc).split())
        raise TrainingError(f"checkpoint {path} does not fit this run's {name} "
                            f"({reason[:200]}{'...' if len(reason) > 200 else ''}); resume with the same options "
                            "and data, or start again with another --out") from exc


def check_finite(value: float | torch.Tensor, *, what: str = "loss", epoch: int | None = None,
                 step: int | None = None, checkpoint: Path | str | None = None) -> None:
    """Raise :class:`TrainingError` at once when a loss is NaN or infinite.

    Report 004 trained a ResNet whose loss went NaN and kept going for ten epochs; this stops the run
    at the first non-finite value and says where the last good checkpoint is.
    """
    number = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if math.isfinite(number):
        return
    where = ", ".join(p for p in (f"epoch {epoch}" if epoch is not None else "",
                                  f"step {step}" if step is not None else "") if p)
    keep = f"; the last good checkpoint is {checkpoint}" if checkpoint else ""
    raise TrainingError(
        f"{what} became {number} ({where or 'during training'}): training stopped{keep}. "
        "Lower the learning rate, enable gradient clipping or check the data"
    )
