"""Domain adaptation: gradient reversal, DANN, source-only / no-GRL baselines, pseudo-labelling, domain datasets.

Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015.
"""

from .data import DomainData, TensorItems, digits_domain_data, load_domain_folders, prepare_named, resolve_domain
from .grl import GradientReversal, grad_reverse, grl_lambda, paper_lr
from .mnistm import blend_digits, digits_domains
from .models import DANN, GANIN, METHODS, GaninCNN, build_dann
from .pseudo_label import PseudoLabels, select_pseudo_labels
from .train import AdaptConfig, AdaptResult, evaluate_domain, train_adaptation

__all__ = [
    "DANN", "GANIN", "METHODS", "AdaptConfig", "AdaptResult", "DomainData", "GaninCNN", "GradientReversal",
    "PseudoLabels", "TensorItems", "blend_digits", "build_dann", "digits_domain_data", "digits_domains",
    "evaluate_domain", "grad_reverse", "grl_lambda", "load_domain_folders", "paper_lr", "prepare_named",
    "resolve_domain", "select_pseudo_labels", "train_adaptation",
]
