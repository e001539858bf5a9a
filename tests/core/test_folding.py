"""Batch-norm folding: same features, fewer layers, caller's model untouched."""

import torch
from torch import nn

from transferlab.backbones import load_backbone, make_taps
from transferlab.features.folding import fold_batch_norm


def count_batch_norms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())


def test_folding_keeps_the_features_and_leaves_the_model_alone():
    torch.manual_seed(0)
    backbone = load_backbone("resnet18", "none", seed=0)
    model = backbone.model.eval()
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):  # non-trivial statistics
        bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2.0), bn.weight.data.uniform_(0.5, 1.5)
    taps = make_taps(backbone.spec, model, ["layer2", "pre_logits"])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = taps(x)
        folded = fold_batch_norm(taps)
        got = folded(x)
        again = taps(x)
    assert count_batch_norms(folded) == 0 and count_batch_norms(model) == 20
    for layer in expected:
        torch.testing.assert_close(got[layer], expected[layer], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(again[layer], expected[layer], rtol=0, atol=0)


def test_a_tapped_convolution_keeps_its_batch_norm():
    backbone = load_backbone("resnet18", "none", seed=0)
    conv = "layer1.0.conv1"  # a graph node name: the raw convolution output, before its batch norm
    taps = make_taps(backbone.spec, backbone.model.eval(), [conv, "pre_logits"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        folded = fold_batch_norm(taps)
        torch.testing.assert_close(folded(x)[conv], taps(x)[conv])
    assert count_batch_norms(folded) == 1  # the tapped conv's batch norm stays; the other 19 are folded


def test_training_mode_and_untraceable_models_are_returned_unchanged():
    class Untraceable(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            return self.bn(self.conv(x)) if x.sum() > 0 else x  # data-dependent control flow: FX cannot trace

    model = Untraceable()
    assert fold_batch_norm(model) is model  # training mode
    assert fold_batch_norm(model.eval()) is model


def test_extraction_leaves_the_callers_network_as_it_was(tmp_path):
    import numpy as np
    from PIL import Image

    from transferlab.features import extract_features

    backbone = load_backbone("resnet18", "none", seed=0)
    before = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(paths[-1])
    extract_features(paths, backbone, ["layer2", "pre_logits"], use_cache=False, progress=False, workers=0)
    after = backbone.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    convs = [m for m in backbone.model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.weight.is_contiguous() for c in convs)  # not switched to channels-last under the caller
    assert count_batch_norms(backbone.model) == 20
