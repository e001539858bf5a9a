"""docs/examples/widened_efficientnet.py (report 004's widened EfficientNet, issue 17 item 9) does what docs say."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "widened_efficientnet.py"


@pytest.fixture(scope="module")
def example():
    """The example module, imported (which registers its backbone); afterwards the registry is as it was, so
    later tests in this process (a listing, the catalog check) see the built-in entries only."""
    from transferlab.backbones import registry

    registry._load_builtins()
    saved = dict(registry._REGISTRY)
    spec = importlib.util.spec_from_file_location("widened_efficientnet", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["widened_efficientnet"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("widened_efficientnet", None)
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_stage_table_is_efficientnet_v2_s_and_widening_adds_weights(example):
    from torchvision.models import efficientnet_v2_s

    plain = efficientnet_v2_s()
    assert _params(example.efficientnet_v2_s_wide(1.0)) == _params(plain) == 21_458_488  # report 004's count
    wide = _params(example.efficientnet_v2_s_wide(1.1))
    assert 1.1 < wide / _params(plain) < 1.3  # channels x1.1: weights grow by about 1.1^2
    for i in (2, 3, 4, 5):  # report 004's widening: an attribute changes, no weight does
        plain.features[i][0].out_channels = int(plain.features[i][0].out_channels * 1.1)
    assert _params(plain) == 21_458_488


def test_the_registered_backbone_works_in_the_commands(example, photos, tmp_path, capsys):
    from test_explain_cli import _results, run

    from transferlab.backbones import get_spec, register

    assert get_spec(example.NAME).gradcam_layer == "features.7"
    register(example.spec("test_wide_effnet_64", width=1.1, size=64))  # small input: a fast test
    out = tmp_path / "perc"
    code, _, err = run(["explain", "perceptual-experiment", str(photos["chelsea"]), "-b", "test_wide_effnet_64",
                        "--weights", "none", "--device", "cpu", "--layer", "stage2", "--out", str(out)], capsys)
    assert code == 0, err
    rows = _results(out)["rows"]
    assert [r["space"] for r in rows] == ["pixels", "pixels", "stage2", "stage2"]
    assert all(r["original vs noisy"] > 0 for r in rows)
