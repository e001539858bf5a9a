"""SqueezeNet 1.0 and 1.1 (Iandola et al. 2016), the visualisation practical's network: cut points and shapes."""

from __future__ import annotations

import pytest
import torch

from transferlab.backbones import get_spec, layer_shapes, load_backbone, make_taps, resolve_layer
from transferlab.errors import ConfigError
from transferlab.finetune import logits_of, replace_head

SHAPES = {
    "squeezenet1_0": {"conv1": (96, 109, 109), "pool1": (96, 54, 54), "fire2": (128, 54, 54),
                      "fire4": (256, 54, 54), "pool4": (256, 27, 27), "fire8": (512, 27, 27),
                      "pool8": (512, 13, 13), "fire9": (512, 13, 13)},
    "squeezenet1_1": {"conv1": (64, 111, 111), "pool1": (64, 55, 55), "fire2": (128, 55, 55),
                      "pool3": (128, 27, 27), "fire5": (256, 27, 27), "pool5": (256, 13, 13),
                      "fire8": (512, 13, 13), "fire9": (512, 13, 13)},
}
COMMON = {"features": (512, 13, 13), "pre_logits": (512, 13, 13), "conv10": (1000, 13, 13),
          "relu10": (1000, 13, 13), "avgpool": (1000, 1, 1), "logits": (1000,)}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_listed_shapes_are_the_papers(name):
    spec = get_spec(name)
    assert [n for n in spec.cut_points if n.startswith("fire")] == [f"fire{i}" for i in range(2, 10)]
    assert layer_shapes(spec, list(SHAPES[name]) + list(COMMON)) == {**SHAPES[name], **COMMON}
    assert (spec.default_layer, spec.head, spec.gradcam_layer) == ("features", "classifier.1", "features.12")
    assert resolve_layer(spec, "fire9").module == "features.12"
    assert spec.preprocessing.crop_size == 224 and len(spec.categories) == 1000
    # its classifier is a conv on the map, not a vector head: no composite <conv>><classifier> cells
    with pytest.raises(ConfigError, match="composite cells .* squeezenet.* is not one"):
        resolve_layer(spec, "fire9>conv10")


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_real_forward_matches_the_listing_and_logits_are_the_networks(name):
    spec = get_spec(name)
    model = load_backbone(name, "none", seed=0).model.eval()
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = make_taps(spec, model, list(spec.cut_points))(x)
        direct = model(x)
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == layer_shapes(spec)
    torch.testing.assert_close(out["logits"], direct)
    torch.testing.assert_close(out["avgpool"].flatten(1), direct)
    torch.testing.assert_close(out["relu10"].mean(dim=(2, 3)), direct, rtol=1e-5, atol=1e-6)


def test_fine_tuning_replaces_the_1x1_conv_head():
    spec = get_spec("squeezenet1_1")
    model = load_backbone("squeezenet1_1", "none", seed=0).model
    new = replace_head(model, spec, 5)
    assert isinstance(new, torch.nn.Conv2d) and new.weight.shape == (5, 512, 1, 1)
    model.train()
    assert logits_of(model(torch.rand(2, 3, 64, 64))).shape == (2, 5)


def test_grad_cam_defaults_to_fire9_and_weights_its_map_by_mean_gradients():
    """Selvaraju et al. 2017 by hand on the last Fire module (13 x 13 at 224 px; here 64 px -> 3 x 3)."""
    import torch.nn.functional as F

    from transferlab.explain import ExplainModel, GradCAM

    model = ExplainModel.from_backbone("squeezenet1_1", "none", seed=0)
    assert model.gradcam_layer == "features.12"
    pixels = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    cam = GradCAM(model)
    explanation = cam.attribute(pixels)
    store = {}
    handle = model.layer_module("features.12").register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        scores = model.module(model.normalize(pixels))
    finally:
        handle.remove()
    (grads,) = torch.autograd.grad(scores.gather(1, explanation.targets[:, None]).sum(), store["a"])
    reference = F.relu((grads.mean(dim=(2, 3), keepdim=True) * store["a"]).sum(dim=1)).detach()
    assert cam.last_low_res_.shape == (1, 3, 3)
    torch.testing.assert_close(cam.last_low_res_, reference, rtol=1e-4, atol=1e-7)
