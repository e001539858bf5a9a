import torch
from torch import nn

from transferlab.explain import SaliencyMap

from explain_helpers import CLASSES, PRE, SIZE, tiny_cnn, wrap


def reference_saliency(model, pixels, idx):
    """Simonyan et al. 2014 by hand: |d score_c / d x| on the normalised input, max over channels."""
    x = model.normalize(pixels).detach().requires_grad_(True)
    scores = model.module(x)
    scores.gather(1, idx[:, None]).sum().backward()
    return x.grad.abs().amax(dim=1)


def test_saliency_equals_reference_on_seeded_cnn():
    model = wrap(tiny_cnn(seed=3))
    pixels = torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    exp = SaliencyMap(model).attribute(pixels)
    predicted = model.module(model.normalize(pixels)).argmax(1)
    assert torch.equal(exp.targets, predicted)
    assert exp.maps.shape == (4, SIZE, SIZE)
    torch.testing.assert_close(exp.maps, reference_saliency(model, pixels, predicted), rtol=1e-5, atol=1e-7)
    fixed = SaliencyMap(model).attribute(pixels, target="blue")
    assert fixed.targets.tolist() == [2, 2, 2, 2]
    torch.testing.assert_close(fixed.maps, reference_saliency(model, pixels, fixed.targets), rtol=1e-5, atol=1e-7)


def test_saliency_of_linear_network_is_its_weight_pattern():
    h = w = 4
    linear = nn.Linear(3 * h * w, 2, bias=True)
    with torch.no_grad():
        pattern = torch.arange(3 * h * w, dtype=torch.float32).view(3, h, w) - 20.0  # signs mixed
        linear.weight[0] = pattern.flatten()
        linear.weight[1] = -2 * pattern.flatten().flip(0)
        linear.bias.zero_()
    model = wrap(nn.Sequential(nn.Flatten(), linear), classes=["a", "b"], pre=PRE, gradcam_layer=None)
    pixels = torch.rand(3, 3, h, w, generator=torch.Generator().manual_seed(1))
    for cls, weights in ((0, linear.weight[0]), (1, linear.weight[1])):
        exp = SaliencyMap(model).attribute(pixels, target=cls)
        expected = weights.detach().view(3, h, w).abs().amax(0)
        for i in range(3):  # a linear score's gradient does not depend on the image
            assert torch.equal(exp.maps[i], expected)


def test_smoothgrad_without_noise_is_vanilla_and_is_seeded():
    model = wrap(tiny_cnn(seed=4))
    pixels = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    vanilla = SaliencyMap(model).attribute(pixels).maps
    zero_noise = SaliencyMap(model, smoothgrad=True, samples=3, noise=0.0).attribute(pixels).maps
    torch.testing.assert_close(zero_noise, vanilla, rtol=1e-5, atol=1e-7)
    a = SaliencyMap(model, smoothgrad=True, samples=4, noise=0.2, seed=7).attribute(pixels).maps
    b = SaliencyMap(model, smoothgrad=True, samples=4, noise=0.2, seed=7).attribute(pixels).maps
    c = SaliencyMap(model, smoothgrad=True, samples=4, noise=0.2, seed=8).attribute(pixels).maps
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a, vanilla)


def test_rows_report_target_and_probability():
    model = wrap(tiny_cnn(seed=3))
    pixels = torch.rand(2, 3, SIZE, SIZE)
    rows = SaliencyMap(model).attribute(pixels, target="green").rows(CLASSES, ["a.png", "b.png"])
    assert [r["target"] for r in rows] == ["green", "green"]
    assert all(0 < r["target_probability"] < 1 and r["map_max"] >= r["map_mean"] >= 0 for r in rows)
