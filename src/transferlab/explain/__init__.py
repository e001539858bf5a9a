"""Seeing inside the network: saliency, Grad-CAM, adversarial examples, class visualisation, perceptual loss.

One small class per method, each with one verb, all on an :class:`ExplainModel` (a registry backbone
with its preprocessing, or a saved transferlab model). The commands' library verbs (``run_saliency``,
``run_gradcam``, ...) live in :mod:`transferlab.explain.run`: one run folder each, replayable with
``transferlab rerun``. Activation maps and first-layer filters are the inspection study's
(``transferlab activations``), not duplicated here.
"""

from .adversarial import FGSM, METHODS, PGD, AttackResult, CarliniWagnerL2, IterativeAttack, make_attack
from .class_viz import ClassVisualization, ClassVisualizer
from .gradcam import GradCAM, hook_count
from .localize import Localization, box_iou, localize
from .model import ExplainModel, PixelModel
from .perceptual import PerceptualDistance, add_noise, default_layers, perceptual_experiment, pixel_distances, translate
from .run import (ExplainOptions, ExplainResults, run_adversarial, run_classviz, run_gradcam, run_perceptual,
                  run_perceptual_experiment, run_saliency)
from .robustness import MinimalEps, minimal_eps, perturbation_vs_saliency
from .saliency import SaliencyMap
from .target import Explanation, Target, resolve_class

__all__ = [
    "FGSM", "METHODS", "PGD", "AttackResult", "CarliniWagnerL2", "ClassVisualization", "ClassVisualizer", "ExplainModel",
    "ExplainOptions", "ExplainResults", "Explanation", "GradCAM", "IterativeAttack", "Localization", "MinimalEps",
    "PerceptualDistance", "PixelModel", "SaliencyMap", "Target",
    "add_noise", "box_iou", "default_layers", "hook_count", "localize", "make_attack", "minimal_eps",
    "perceptual_experiment", "perturbation_vs_saliency", "pixel_distances",
    "resolve_class", "run_adversarial", "run_classviz", "run_gradcam", "run_perceptual",
    "run_perceptual_experiment", "run_saliency", "translate",
]
