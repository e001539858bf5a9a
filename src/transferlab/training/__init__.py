"""Pieces shared by every training loop (fine-tuning, DANN, GANs): checkpoints, RNG state, NaN guard, history."""

from .checkpoint import (
    capture_rng_state,
    check_finite,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from .history import History

__all__ = [
    "History",
    "capture_rng_state",
    "check_finite",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]
