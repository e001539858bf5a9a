import pytest
import torch

from transferlab.errors import ConfigError
from transferlab.explain import FGSM, PGD, IterativeAttack, make_attack


def test_iterative_method_flips_correct_predictions_within_budget(trained, test_images):
    x, y = test_images
    eps = 0.1  # measured: every held-out image flips within <= 9 steps of L2 length 0.2 at eps=0.1
    result = IterativeAttack(trained, step_size=0.2, max_steps=30, eps=eps).attack(x, labels=y)
    assert torch.equal(result.original_pred, y)
    assert bool(result.success.all()), result.rows(trained.classes)
    assert bool((result.adversarial_pred != y).all())
    assert bool((result.linf <= torch.tensor(eps)).all())  # the budget as a float32 number, no ulp over
    assert float(result.adversarial.min()) >= 0 and float(result.adversarial.max()) <= 1
    assert int(result.steps.max()) < 30 and int(result.steps.min()) >= 1
    rows = result.rows(trained.classes)
    assert all(r["success"] and r["original_class"] != r["adversarial_class"] for r in rows)
    assert all(r["l2"] > 0 and abs(r["linf_255"] - 255 * r["linf"]) < 1e-9 for r in rows)


def test_iterative_method_reaches_a_target_class(trained, test_images):
    x, y = test_images
    not_blue = x[y != 2]
    result = IterativeAttack(trained, step_size=0.2, max_steps=60).attack(not_blue, target="blue")
    assert result.goal.tolist() == [2] * len(not_blue)
    assert result.adversarial_pred.tolist() == [2] * len(not_blue)
    assert bool(result.success.all())


def test_iterative_method_stops_each_image_once_fooled(trained, test_images):
    """In a batch, an image fooled early stops moving: it ends exactly where attacking it alone ends."""
    x, y = test_images
    result = IterativeAttack(trained, step_size=0.2, max_steps=30).attack(x, labels=y)
    assert len(set(result.steps.tolist())) > 1  # the images need different numbers of steps
    for i in range(len(x)):
        alone = IterativeAttack(trained, step_size=0.2, max_steps=30).attack(x[i:i + 1], labels=y[i:i + 1])
        assert int(alone.steps[0]) == int(result.steps[i])
        torch.testing.assert_close(alone.adversarial[0], result.adversarial[i])  # a further step moves 0.2


@pytest.mark.parametrize("eps", [0.01, 8 / 255, 0.05])
def test_pgd_respects_its_budget_exactly(trained, test_images, eps):
    x, y = test_images
    result = PGD(trained, eps=eps, steps=5, seed=0).attack(x, labels=y)
    delta = result.adversarial - result.original
    assert bool((delta.abs() <= torch.tensor(eps, dtype=delta.dtype)).all())  # float32 eps, no ulp over
    assert float(result.linf.max()) == pytest.approx(eps, abs=1e-6)  # and the budget is used
    assert float(result.adversarial.min()) >= 0 and float(result.adversarial.max()) <= 1


def test_pgd_is_seeded_and_lowers_the_true_class_confidence(trained, test_images):
    x, y = test_images
    a = PGD(trained, eps=0.05, steps=5, seed=3).attack(x, labels=y)
    b = PGD(trained, eps=0.05, steps=5, seed=3).attack(x, labels=y)
    assert torch.equal(a.adversarial, b.adversarial)
    with torch.no_grad():
        after = trained.pixel_module(a.adversarial).softmax(1).gather(1, y[:, None])[:, 0]
    assert float((a.original_conf - after).mean()) > 0


def test_fgsm_moves_every_unclamped_pixel_by_eps(trained, test_images):
    x, y = test_images
    eps = 0.03
    result = FGSM(trained, eps=eps).attack(x, labels=y)
    delta = (result.adversarial - result.original).abs()
    inside = (x > eps) & (x < 1 - eps)
    torch.testing.assert_close(delta[inside], torch.full_like(delta[inside], eps), atol=1e-6, rtol=0)
    assert result.steps.tolist() == [1] * len(x)


def test_attack_options_are_checked(trained):
    with pytest.raises(ConfigError, match="unknown attack 'deepfool'; expected one of iterative, fgsm, pgd, cw"):
        make_attack("deepfool", trained)
    with pytest.raises(ConfigError, match="L-inf budget"):
        PGD(trained, eps=8)
    with pytest.raises(ConfigError, match="step_size must be > 0"):
        IterativeAttack(trained, step_size=0)
    with pytest.raises(ConfigError, match="unknown class"):
        IterativeAttack(trained).attack(torch.rand(1, 3, 16, 16), target="purple")


# ------------------------------------------------------------------ minimal perturbations (issue 17, item 6)
def _linear_two_class(seed: int = 0):
    """A linear classifier on pixels: its decision boundary, hence every minimal perturbation, is known exactly."""
    from explain_helpers import SIZE, wrap
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 2))
    model = wrap(net, classes=["a", "b"], gradcam_layer=None)
    x = (0.5 + 0.05 * torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)
    x.requires_grad_(True)
    scores = model.pixel_module(x)[0]
    true = int(scores.argmax())
    margin = scores[true] - scores[1 - true]
    (g,) = torch.autograd.grad(-margin, x)  # constant: the direction that lowers the margin
    return model, x.detach(), float(margin.detach()), g


def test_the_iterative_step_is_bisected_to_the_decision_boundary():
    """On a linear model the smallest L2 flip along the gradient is margin / ||g||_2; one 0.5-L2 step overshoots it."""
    model, x, margin, g = _linear_two_class()
    exact = margin / float(g.norm())
    assert exact < 0.4  # a full step of 0.5 goes past the boundary
    coarse = IterativeAttack(model, step_size=0.5, refine=0).attack(x)
    fine = IterativeAttack(model, step_size=0.5).attack(x)
    assert bool(coarse.success.all()) and bool(fine.success.all())
    assert float(coarse.l2[0]) == pytest.approx(0.5, rel=1e-4)
    assert exact <= float(fine.l2[0]) <= exact + 0.5 / 2 ** 12 + 1e-6  # within the bisection's tolerance


def test_minimal_eps_of_fgsm_is_the_boundary_in_l_inf():
    """FGSM moves every pixel by eps along sign(g): the margin falls by eps ||g||_1, so the smallest eps is exact."""
    from transferlab.explain.robustness import minimal_eps

    model, x, margin, g = _linear_two_class(seed=1)
    exact = margin / float(g.abs().sum())
    tol = exact / 50
    found = minimal_eps(model, x, method="fgsm", max_eps=20 * exact, tol=tol)
    assert found.eps[0] is not None
    assert exact <= found.eps[0] <= exact + tol + 1e-9
    assert bool(found.result.success.all())
    assert float(found.result.linf[0]) == pytest.approx(found.eps[0], rel=1e-5)
    none = minimal_eps(model, x, method="fgsm", max_eps=exact / 2, tol=exact / 20)
    assert none.eps == [None] and not bool(none.result.success.all())  # not reachable within max_eps


def test_carlini_wagner_finds_a_near_minimal_l2_perturbation():
    from transferlab.explain import CarliniWagnerL2

    model, x, margin, g = _linear_two_class(seed=2)
    exact = margin / float(g.norm())
    result = CarliniWagnerL2(model, steps=200, lr=0.005, search_steps=4).attack(x)
    assert bool(result.success.all())
    assert exact <= float(result.l2[0]) <= 1.25 * exact  # C&W: the smallest L2 (x1.25 slack for Adam's steps)
    fgsm = PGD(model, eps=float(result.linf[0]), steps=1).attack(x)  # same L-inf, spread everywhere: larger L2
    assert float(fgsm.l2[0]) > float(result.l2[0])


def test_minimal_eps_and_carlini_wagner_options_are_checked(trained):
    from transferlab.explain.robustness import minimal_eps

    x = torch.full((1, 3, 16, 16), 0.5)
    with pytest.raises(ConfigError, match="minimal-eps search takes an L-inf attack"):
        minimal_eps(trained, x, method="cw")
    with pytest.raises(ConfigError, match="0 < tol < max_eps"):
        minimal_eps(trained, x, tol=0.5, max_eps=0.1)
    with pytest.raises(ConfigError, match="takes no L-inf budget"):
        make_attack("cw", trained, eps=0.1)


def test_map_correlations():
    from transferlab.explain.robustness import correlations

    a = torch.rand(8, 8, generator=torch.Generator().manual_seed(0))
    assert correlations(a, 2 * a + 1) == pytest.approx({"pearson": 1.0, "spearman": 1.0})
    assert correlations(a, -a) == pytest.approx({"pearson": -1.0, "spearman": -1.0})
    assert correlations(a, a.pow(3))["spearman"] == pytest.approx(1.0)  # ranks only
    assert all(v != v for v in correlations(a, torch.ones(8, 8)).values())  # constant map: NaN
