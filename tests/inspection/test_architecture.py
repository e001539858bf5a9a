"""Architecture tables: VGG16 against the seeds' Tables 1/2, a hand-counted network, torchvision's metadata."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import get_model_weights

from transferlab.backbones import get_spec, list_backbones
from transferlab.errors import ConfigError
from transferlab.inspection.architecture import inspect_architecture, plot_architecture, summarize_model

# Seed 000, Q1, Tables 1 and 2 (Conv1-1 ... Conv5-3, FC1 ... FC3), copied from the report.
SEED_CONV = [1_792, 36_928, 73_856, 147_584, 295_168, 590_080, 590_080, 1_180_160, 2_359_808, 2_359_808,
             2_359_808, 2_359_808, 2_359_808]
SEED_CONV_SHAPES = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 512),
                    (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
SEED_FC = [102_764_544, 16_781_312, 4_097_000]
SEED_TOTAL = 138_357_544
SEED_CONV_TOTAL = 14_714_688  # the report's "14,714,688 + ..." (its FC sum is misprinted; the rows are right)


@pytest.fixture(scope="module")
def vgg16():
    return inspect_architecture("vgg16")


def test_vgg16_matches_the_seeds_tables(vgg16):
    conv = [row for row in vgg16.weight_layers() if row.kind == "conv"]
    fc = [row for row in vgg16.weight_layers() if row.kind == "fc"]
    assert len(conv) == 13 and len(fc) == 3
    assert [row.params for row in conv] == SEED_CONV
    assert [row.params for row in fc] == SEED_FC
    # the seeds' formula (k*k*C_in + 1) * C_out reproduces every conv row
    assert [(9 * cin + 1) * cout for cin, cout in SEED_CONV_SHAPES] == SEED_CONV
    names = [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, n + 1)]
    assert [row.cut_point for row in conv] == names
    assert [row.cut_point.split(",")[0] for row in fc] == ["fc6", "fc7", "fc8"]
    assert vgg16.total_params == SEED_TOTAL == sum(SEED_CONV) + sum(SEED_FC)
    assert vgg16.params_of("conv") == SEED_CONV_TOTAL
    assert vgg16.params_of("fc") == SEED_TOTAL - SEED_CONV_TOTAL == 123_642_856
    assert vgg16.fc_share == pytest.approx(123_642_856 / 138_357_544)
    assert round(vgg16.fc_share, 3) == 0.894
    assert vgg16.output_shape == (1000,) and vgg16.totals()["outputs"] == 1000


def test_vgg16_shapes_and_macs_follow_the_conv_formula(vgg16):
    sizes = [224] * 2 + [112] * 2 + [56] * 3 + [28] * 3 + [14] * 3
    for row, (cin, cout), size in zip(vgg16.weight_layers(), SEED_CONV_SHAPES, sizes):
        assert row.output_shape == (cout, size, size)
        assert row.macs == size * size * cout * cin * 9  # bias additions are not multiply-accumulates
    fc6 = vgg16.weight_layers()[13]
    assert fc6.output_shape == (4096,) and fc6.macs == 25_088 * 4_096
    pool5 = next(row for row in vgg16.layers if row.cut_point == "pool5")
    assert pool5.output_shape == (512, 7, 7) and pool5.params == 0 and pool5.macs == 0


@pytest.mark.parametrize("name", [n for n in list_backbones() if get_spec(n).family == "torchvision"])
def test_totals_equal_torchvision_metadata(name):
    """Parameters and GMACs equal the numbers torchvision publishes with each set of weights."""
    summary = inspect_architecture(name)
    meta = get_model_weights(name).DEFAULT.meta
    assert summary.total_params == meta["num_params"]
    assert round(summary.total_macs / 1e9, 3) == pytest.approx(meta["_ops"], abs=1e-3)
    assert sum(row.params for row in summary.layers) == summary.total_params  # rows add up to the totals
    assert sum(row.macs for row in summary.layers) == summary.total_macs
    assert summary.output_shape == (1000,)


class Mix(nn.Module):
    """A module with its own parameter and its own matrix product, around a child Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(5, 3))
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x @ self.w)


def tiny() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 2, 1, bias=False),
                         nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(32, 5), Mix())


# Counted by hand for a (3, 8, 8) input: params (with bias), output shape, MACs.
TINY_EXPECTED = [
    ("0", "Conv2d", (4, 8, 8), 3 * 4 * 9 + 4, 8 * 8 * 4 * 3 * 9),
    ("1", "ReLU", (4, 8, 8), 0, 0),
    ("2", "MaxPool2d", (4, 4, 4), 0, 0),
    ("3", "Conv2d", (2, 4, 4), 4 * 2, 4 * 4 * 2 * 4),
    ("4", "BatchNorm2d", (2, 4, 4), 2 + 2, 0),
    ("5", "Flatten", (32,), 0, 0),
    ("6", "Linear", (5,), 32 * 5 + 5, 32 * 5),
    ("7", "Mix", (2,), 15, 5 * 3),
    ("7.fc", "Linear", (2,), 3 * 2 + 2, 3 * 2),
]


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_tiny_network_table_is_exact(device):
    with torch.device(device):
        model = tiny()
    summary = summarize_model(model, (3, 8, 8), name="tiny")
    got = [(r.module, r.type, r.output_shape, r.params, r.macs) for r in summary.layers]
    assert got == TINY_EXPECTED
    assert summary.total_params == 112 + 8 + 4 + 165 + 15 + 8 == 312
    assert summary.total_macs == 6912 + 128 + 160 + 15 + 6 == 7221
    assert summary.params_of("fc") == 165 + 8 and summary.params_of("conv") == 120
    assert summary.output_shape == (2,)
    assert summary.rows()[-1] == {"module": "total", "cut_point": "", "type": "", "kind": "", "output_shape": "2",
                                  "params": 312, "macs": 7221, "calls": ""}


def test_hooks_removed_and_mode_restored_even_after_an_error():
    model = tiny().train()
    summarize_model(model, (3, 8, 8))
    assert model.training and all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ConfigError, match=r"cannot run on an input of shape \(3, 10, 10\)"):
        summarize_model(model, (3, 10, 10))  # 10 -> pool -> 5: Linear(32) gets 2*5*5 = 50 features
    assert model.training and all(not m._forward_hooks for m in model.modules())


def test_input_size_changes_macs_not_parameters():
    small = inspect_architecture("resnet18", input_size=112)
    full = inspect_architecture("resnet18")
    assert small.total_params == full.total_params == 11_689_512
    conv1 = next(row for row in small.layers if row.module == "conv1")
    assert conv1.output_shape == (64, 56, 56) and conv1.macs == 56 * 56 * 64 * 3 * 49


def test_errors():
    with pytest.raises(ConfigError, match=r"unknown backbone 'vgg61'.*vgg16"):
        inspect_architecture("vgg61")
    with pytest.raises(ConfigError, match="vit_b_16 cannot run on an input of shape"):
        inspect_architecture("vit_b_16", input_size=64)


def test_plot(tmp_path, vgg16):
    path = plot_architecture(vgg16, tmp_path / "a.png")
    assert path.stat().st_size > 10_000


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_attention_macs_by_hand_even_where_pytorch_would_fuse_them(device):
    """4 tokens of width 8, 2 heads of 4: in-proj 4*8*24, QK^T and AV 2*(2*4*4*4), out-proj 4*8*8."""
    with torch.device(device):
        model = SelfAttention()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    summary = summarize_model(model, (4, 8))
    assert summary.total_macs == 4 * 8 * 24 + 2 * (2 * 4 * 4 * 4) + 4 * 8 * 8 == 1280
    assert summary.total_params == 8 * 24 + 24 + 8 * 8 + 8
    attn = next(row for row in summary.layers if row.module == "attn")
    assert attn.kind == "attention" and attn.params == 8 * 24 + 24 and attn.output_shape == (4, 8)
    assert torch.backends.mha.get_fastpath_enabled() == fastpath
