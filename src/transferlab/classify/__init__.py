"""Linear classifiers on deep features, evaluation, saved models and ``load_model``."""

from .evaluate import classification_metrics, write_evaluation
from .linear_model import LinearProbeModel
from .model_file import read_model_folder, write_model_folder
from .probe import CLASSIFIERS, DEFAULT_C_GRID, SOLVERS, choose_C, make_classifier
from .run import LinearOptions, fit, fit_probe, run_linear
from .saved import KINDS, SavedModel, load_model, register_kind
from .torch_linear import TorchLinearClassifier


__all__ = [
    "CLASSIFIERS", "DEFAULT_C_GRID", "LinearOptions", "LinearProbeModel", "choose_C", "classification_metrics",
    "KINDS", "SavedModel", "fit", "fit_probe", "load_model", "register_kind", "make_classifier", "read_model_folder", "run_linear", "write_evaluation",
    "write_model_folder", "SOLVERS", "TorchLinearClassifier",
]
