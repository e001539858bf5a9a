"""The options of one fine-tuning run, their defaults and their validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..backbones.spec import PREPROCESSING_MODES
from ..errors import ConfigError, check_finite_fields, did_you_mean
from .augment import parse_augment
from .freezing import parse_freeze

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "none")
DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 0.01}


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that decides what a fine-tuning run computes.

    ``freeze=None`` means ``all-but-head`` (report 001's best setting), or ``none`` with
    ``from_scratch``; ``lr``/``weight_decay=None`` take the optimiser's default (SGD 0.01/1e-4,
    AdamW 1e-3/0.01); ``patience=None`` disables early stopping (the best epoch is still kept);
    ``step_size=None`` is a third of the epochs. ``input_size`` is the side of the crop fed to the network
    (default: the weights' crop size; the resize before the crop is scaled by the same factor);
    ``grayscale`` is ``duplicate``, ``sum-filters`` or ``learnt`` (report 002 Q9, see
    :mod:`transferlab.backbones.grayscale`). ``split_seed`` (default: ``seed``) decides the data splits alone,
    so that repeats with other ``seed`` values (initialisation, order, augmentation) share the same images.
    """

    backbone: str
    weights: str = "imagenet"
    from_scratch: bool = False
    freeze: str | None = None
    backbone_lr_factor: float = 1.0
    augment: str = "light"
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    schedule: str = "cosine"
    step_size: int | None = None
    gamma: float = 0.1
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    val_fraction: float = 0.2
    patience: int | None = 5
    amp: bool = True
    preprocess: str = "weights"
    train_per_class: int | None = 100
    test_fraction: float | None = None
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    input_size: int | None = None
    grayscale: str = "duplicate"
    split_seed: int | None = None

    @property
    def data_seed(self) -> int:
        """The seed of the train/test and train/validation splits: ``split_seed``, else ``seed``."""
        return self.seed if self.split_seed is None else int(self.split_seed)

    @classmethod
    def from_options(cls, **options: Any) -> "FinetuneConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ConfigError(f"unknown fine-tuning option(s) {', '.join(unknown)}.{did_you_mean(unknown[0], sorted(names))}")
        return cls(**options).resolved()

    def resolved(self) -> "FinetuneConfig":
        """Fill the defaults that depend on other options and validate everything."""
        check_finite_fields(self)
        _choice("--optimizer", self.optimizer, OPTIMIZERS)
        _choice("--schedule", self.schedule, SCHEDULES)
        parse_augment(self.augment)
        from ..backbones.grayscale import check_mode

        check_mode(self.grayscale)
        if self.input_size is not None and int(self.input_size) < 8:
            raise ConfigError(f"--input-size must be at least 8 pixels (or omitted for the weights' crop size); "
                              f"got {self.input_size}")
        _choice("--preprocess", self.preprocess, PREPROCESSING_MODES)
        weights, freeze = str(self.weights), self.freeze
        if self.from_scratch:
            if weights not in ("imagenet", "none"):
                raise ConfigError(f"--from-scratch trains from random weights but --weights {weights} was given; "
                                  "drop one of the two")
            weights = "none"
            if freeze is None:
                freeze = "none"
            elif parse_freeze(freeze).mode != "none":
                raise ConfigError(f"--from-scratch with --freeze {freeze} would keep random layers fixed; "
                                  "use --freeze none (the default with --from-scratch)")
        freeze = str(parse_freeze(freeze or "all-but-head"))
        positive = {"--epochs": self.epochs, "--batch-size": self.batch_size}
        for name, value in positive.items():
            if int(value) < 1:
                raise ConfigError(f"{name} must be at least 1; got {value}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be between 0 and 1 (exclusive); got {self.val_fraction}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"--label-smoothing must be in [0, 1); got {self.label_smoothing}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"--grad-clip must be positive; got {self.grad_clip}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"--patience must be at least 1 (or omitted); got {self.patience}")
        if not self.backbone_lr_factor > 0:
            raise ConfigError(f"--backbone-lr-factor must be positive; got {self.backbone_lr_factor}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be >= 0; got {self.workers}")
        lr = self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]
        wd = self.weight_decay if self.weight_decay is not None else DEFAULT_WEIGHT_DECAY[self.optimizer]
        if not lr > 0 or wd < 0:
            raise ConfigError(f"--lr must be positive and --weight-decay >= 0; got {lr} and {wd}")
        step = self.step_size if self.step_size is not None else max(1, self.epochs // 3)
        return replace(self, weights=weights, freeze=freeze, lr=float(lr), weight_decay=float(wd), step_size=int(step))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self) -> dict[str, Any]:
        """The options a resumed run must share with the interrupted one (all but device/workers)."""
        return {k: v for k, v in self.as_dict().items() if k not in ("device", "workers")}


def _choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{option} {value!r} is not one of {', '.join(choices)}.{did_you_mean(value, list(choices))}")
