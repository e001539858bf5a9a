"""Fine-tuning: a new head on a registry backbone, freezing policies, augmentation, one training loop.

Report 001 (sections 1.6.3-1.6.5) replaces the SVM by a new fully-connected layer trained on the
target data, frozen or not, with or without augmentation, across backbones; report 004 trains
EfficientNetV2-S on Flowers-102 and a ResNet from scratch. :func:`finetune` does all of these.
"""

from .augment import AUGMENT_BLOCKS, AUGMENT_PRESETS, augmentation, eval_transform, parse_augment, train_transform
from .config import FinetuneConfig
from .datasets import TORCHVISION_DATASETS, TrainingData, folder_data, torchvision_data
from .freezing import FREEZE_MODES, FreezePolicy, apply_freeze, parameter_groups, parse_freeze
from .head import get_head, logits_of, replace_head
from .preview import augment_preview, augmented_versions
from .saved import FinetunedModel, save_finetuned
from .trainer import FinetuneTask, Trainer, finetune, split_validation

__all__ = [
    "AUGMENT_BLOCKS", "AUGMENT_PRESETS", "FREEZE_MODES", "TORCHVISION_DATASETS", "FinetuneConfig", "FinetuneTask",
    "FinetunedModel", "FreezePolicy", "Trainer", "TrainingData", "apply_freeze", "augment_preview", "augmentation",
    "augmented_versions", "eval_transform", "finetune", "folder_data", "get_head", "logits_of", "parameter_groups",
    "parse_augment", "parse_freeze", "replace_head", "save_finetuned", "split_validation", "torchvision_data",
    "train_transform",
]
