import gc
import warnings

import pytest
import torch
import torch.nn.functional as F
from explain_helpers import SIZE, tiny_cnn, wrap
from torch import nn

from transferlab.errors import ConfigError
from transferlab.explain import ExplainModel, GradCAM, hook_count


def reference_gradcam(model, pixels, idx, layer_module):
    """Selvaraju et al. 2017 by hand: w_k = mean_ij dy_c/dA_k, cam = ReLU(sum_k w_k A_k)."""
    store = {}
    handle = layer_module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        scores = model.module(model.normalize(pixels))
    finally:
        handle.remove()
    activation = store["a"]
    (grads,) = torch.autograd.grad(scores.gather(1, idx[:, None]).sum(), activation)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * activation).sum(dim=1)).detach()


@pytest.mark.parametrize("layer", ["1", "3"])
def test_gradcam_equals_reference_on_seeded_cnn(layer):
    model = wrap(tiny_cnn(seed=5))
    pixels = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    cam = GradCAM(model, layer)
    exp = cam.attribute(pixels, target="green")
    ref = reference_gradcam(model, pixels, exp.targets, model.layer_module(layer))
    torch.testing.assert_close(cam.last_low_res_, ref, rtol=1e-5, atol=1e-6)
    up = F.interpolate(ref[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(exp.maps, up, rtol=1e-5, atol=1e-6)
    assert exp.maps.shape == (3, SIZE, SIZE) and float(exp.maps.min()) >= 0


def test_gradcam_default_layer_of_registry_backbone_matches_reference():
    model = ExplainModel.from_backbone("digits_cnn", "none", seed=0)
    assert model.gradcam_layer == "features.16"  # spec.gradcam_layer: the last conv block's (in-place) ReLU
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    cam = GradCAM(model)
    exp = cam.attribute(pixels)
    assert cam.last_low_res_.shape == (2, 8, 8)
    ref = reference_gradcam(model, pixels, exp.targets, model.layer_module("features.16"))
    torch.testing.assert_close(cam.last_low_res_, ref, rtol=1e-4, atol=1e-7)
    # a friendly cut-point name resolves to the same module
    assert model.layer_module("relu5") is model.layer_module("features.16")


def test_layer_without_spatial_extent_is_a_clear_error():
    model = wrap(tiny_cnn(seed=5))
    pixels = torch.rand(1, 3, SIZE, SIZE)
    for layer in ("6", "4"):  # the Linear head (vector) and the 1x1 global average pool
        with pytest.raises(ConfigError, match=f"layer '{layer}' has no spatial extent"):
            GradCAM(model, layer).attribute(pixels)
    assert hook_count(model.module) == 0


def test_unknown_layer_and_missing_default_layer():
    registry = ExplainModel.from_backbone("digits_cnn", "none")
    with pytest.raises(ConfigError, match=r"unknown layer 'feature.16'.*Did you mean: features.16"):
        GradCAM(registry, "feature.16")
    with pytest.raises(ConfigError, match="no default Grad-CAM layer"):
        GradCAM(wrap(tiny_cnn(), gradcam_layer=None))


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance() touches deprecated torch.distributed aliases
        warnings.simplefilter("ignore")
        return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


def test_gradcam_loop_leaves_no_hooks_and_no_tensors():
    model = wrap(tiny_cnn(seed=6))
    pixels = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    cam = GradCAM(model, "3")
    for _ in range(3):  # warm-up: lazily created buffers and captum's caches
        cam.attribute(pixels)
    before = _live_tensors()
    for i in range(100):
        exp = cam.attribute(pixels, target=i % 3)
        assert hook_count(model.module) == 0
    del exp
    after = _live_tensors()
    assert after - before <= 0, f"{after - before} tensors leaked over 100 Grad-CAM calls"
    for module in model.module.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks and not getattr(module, "_backward_pre_hooks", {})


class _FailsOnSecondCall(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 2:  # the first call scores the batch, the second is captum's hooked pass
            raise RuntimeError("boom")
        return self.inner(x)


def test_hooks_are_removed_after_an_exception():
    net = _FailsOnSecondCall(tiny_cnn(seed=7))
    modules = dict(net.named_modules())
    model = wrap(net)
    model.layer_module = lambda name: modules[name]
    with pytest.raises(RuntimeError, match="boom"):
        GradCAM(model, "inner.3").attribute(torch.rand(1, 3, SIZE, SIZE))
    assert hook_count(net) == 0
