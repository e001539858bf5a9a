"""Looking inside networks and datasets: architecture tables, ImageNet predictions, activation maps and
dataset summaries (the seeds' section-1 questions of ``003`` and report ``004`` section 2.1)."""

from .activations import ActivationResult, activation_maps, filter_tiles, first_conv
from .architecture import ArchitectureSummary, LayerRow, inspect_architecture, summarize_model
from .dataset_summary import DatasetSummary, summarize_dataset
from .imagenet import ImagePrediction, TopK, predict_imagenet

__all__ = [
    "ActivationResult", "ArchitectureSummary", "DatasetSummary", "ImagePrediction", "LayerRow", "TopK",
    "activation_maps", "filter_tiles", "first_conv", "inspect_architecture", "predict_imagenet",
    "summarize_dataset", "summarize_model",
]
