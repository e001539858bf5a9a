"""Linear classifiers on deep features, evaluation, saved models and ``load_model``."""

from pathlib import Path

from ..errors import ModelFileError
from .evaluate import classification_metrics, write_evaluation
from .linear_model import LinearProbeModel
from .model_file import read_model_folder, write_model_folder
from .probe import CLASSIFIERS, DEFAULT_C_GRID, choose_C, make_classifier
from .run import LinearOptions, fit, fit_probe, run_linear


def load_model(folder: Path | str):
    """Load any saved transferlab model folder (``linear`` from ``run``, ``finetuned`` from ``finetune``)."""
    meta, _ = read_model_folder(folder)
    if meta.get("kind") == "linear":
        return LinearProbeModel.load(folder)
    if meta.get("kind") == "finetuned":
        from ..finetune.saved import FinetunedModel

        return FinetunedModel.from_folder(folder)
    raise ModelFileError(f"{folder} holds a model of unknown kind {meta.get('kind')!r}")


__all__ = [
    "CLASSIFIERS", "DEFAULT_C_GRID", "LinearOptions", "LinearProbeModel", "choose_C", "classification_metrics",
    "fit", "fit_probe", "load_model", "make_classifier", "read_model_folder", "run_linear", "write_evaluation",
    "write_model_folder",
]
