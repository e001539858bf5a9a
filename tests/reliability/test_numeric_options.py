"""Numeric options are validated before any work: a NaN or infinite value is one line naming the option."""

import math

import pytest

from transferlab.adapt.train import AdaptConfig
from transferlab.errors import ConfigError
from transferlab.finetune.config import FinetuneConfig
from transferlab.generate.train import GanConfig
from transferlab.training.engine import FitConfig


@pytest.mark.parametrize("config, option", [
    (FinetuneConfig("digits_cnn", momentum=math.nan), "--momentum"),
    (FinetuneConfig("digits_cnn", weight_decay=math.inf), "--weight-decay"),
    (FinetuneConfig("digits_cnn", test_fraction=math.nan), "--test-fraction"),
    (AdaptConfig(gamma=math.nan), "--gamma"),
    (AdaptConfig(pl_weight=-math.inf), "--pl-weight"),
    (GanConfig(lr_g=math.nan), "--lr-g"),
])
def test_a_non_finite_option_is_refused_in_one_line(config, option):
    with pytest.raises(ConfigError, match=rf"^{option} must be a finite number; got (nan|inf|-inf)$"):
        config.resolved()


def test_the_engine_refuses_a_non_finite_clip():
    with pytest.raises(ConfigError, match="--grad-clip must be a finite number"):
        FitConfig(epochs=1, grad_clip=math.inf).resolved()
