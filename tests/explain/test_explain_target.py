import pytest
import torch

from transferlab.errors import ConfigError
from transferlab.explain import Target, resolve_class

CLASSES = ["tabby cat", "Coffee mug", "astronaut"]


def test_resolve_by_name_case_and_index():
    assert resolve_class("astronaut", CLASSES) == 2
    assert resolve_class("coffee mug", CLASSES) == 1
    assert resolve_class(0, CLASSES) == 0
    assert resolve_class("1", CLASSES) == 1


def test_name_wins_over_index_for_digit_class_names():
    digits = [str(d) for d in range(9, -1, -1)]  # "9".."0": the name "3" is index 6
    assert resolve_class("3", digits) == 6


def test_unknown_class_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown class 'tabby'.*tabby cat, Coffee mug, astronaut.*0\.\.2"):
        resolve_class("tabby", CLASSES)


def test_unknown_class_in_long_list_is_truncated():
    many = [f"c{i}" for i in range(100)]
    with pytest.raises(ConfigError, match=r"\+75 more") as info:
        resolve_class("zebra", many)
    assert "c99" not in str(info.value)


def test_index_out_of_range():
    with pytest.raises(ConfigError, match="out of range.*3 classes"):
        resolve_class(3, CLASSES)
    with pytest.raises(ConfigError, match="out of range"):
        resolve_class("-1", CLASSES)


def test_target_indices_default_predicted_and_fixed():
    scores = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    assert Target().indices(CLASSES, scores).tolist() == [1, 0]
    assert Target("astronaut").indices(CLASSES, scores).tolist() == [2, 2]
    assert Target.of(Target(1)) == Target(1)
    assert Target().describe(CLASSES) == "predicted class"
