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
    with pytest.raises(ConfigError, match="unknown attack 'cw'; expected one of iterative, fgsm, pgd"):
        make_attack("cw", trained)
    with pytest.raises(ConfigError, match="L-inf budget"):
        PGD(trained, eps=8)
    with pytest.raises(ConfigError, match="step_size must be > 0"):
        IterativeAttack(trained, step_size=0)
    with pytest.raises(ConfigError, match="unknown class"):
        IterativeAttack(trained).attack(torch.rand(1, 3, 16, 16), target="purple")
