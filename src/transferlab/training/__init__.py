"""The one training engine (:func:`fit` runs a :class:`Task`) and its pieces: checkpoints, RNG state, NaN guard,
history, DDP."""

from .checkpoint import (
    capture_rng_state,
    check_finite,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from .engine import FitConfig, FitState, Step, Task, check_run_folder, fit, key_changes, seeded
from .history import History

__all__ = [
    "FitConfig",
    "FitState",
    "History",
    "Step",
    "Task",
    "capture_rng_state",
    "check_finite",
    "check_run_folder",
    "fit",
    "key_changes",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
    "seeded",
]
