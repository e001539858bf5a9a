"""The gradient reversal layer: identity forward, exactly -lambda x upstream gradient backward."""

from __future__ import annotations

import math

import pytest
import torch

from torch.autograd.gradcheck import GradcheckError

from transferlab.adapt import GradientReversal, grad_reverse, grl_lambda, paper_lr
from transferlab.errors import ConfigError


@pytest.mark.parametrize("lam", [0.0, 0.37, 1.0, 3.0])
def test_forward_is_identity_and_backward_is_minus_lambda(lam):
    x = torch.randn(4, 5, requires_grad=True)
    y = grad_reverse(x, lam)
    assert torch.equal(y, x)
    upstream = torch.randn(4, 5)
    y.backward(upstream)
    assert torch.equal(x.grad, -lam * upstream)


@pytest.mark.parametrize("lam", [0.25, 1.0, 2.5])
def test_gradcheck(lam):
    # gradcheck compares the analytic backward with finite differences of the forward. The GRL's forward is
    # the identity, so we check h(x) = GRL(x) - (1 + lam) * x.detach(): numerically h(x) = -lam * x (Jacobian
    # -lam * I); analytically only the GRL contributes a gradient. gradcheck passes iff the GRL's backward
    # is exactly -lam * I.
    x = torch.randn(3, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: grad_reverse(t, lam) - (1 + lam) * t.detach(), (x,))
    # and the plain GRL fails gradcheck (its backward is deliberately not its forward's derivative)
    with pytest.raises(GradcheckError):
        torch.autograd.gradcheck(lambda t: grad_reverse(t, lam), (x,))


def test_module_uses_its_current_lambda():
    layer = GradientReversal(0.5)
    x = torch.ones(3, requires_grad=True)
    layer(x).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -0.5))
    layer.lambda_ = 2.0
    x.grad = None
    layer(x).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -2.0))
    assert "lambda_=2" in repr(layer)


def test_paper_lambda_schedule_and_constant():
    assert grl_lambda(0.0) == 0.0
    assert grl_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert grl_lambda(1.0) == pytest.approx(0.9999092, abs=1e-7)
    assert grl_lambda(1.0, maximum=0.3) == pytest.approx(0.3 * 0.9999092, abs=1e-7)
    assert grl_lambda(0.1, "constant", maximum=0.7) == 0.7
    values = [grl_lambda(p / 10) for p in range(11)]
    assert values == sorted(values)
    with pytest.raises(ConfigError, match="unknown GRL factor schedule 'linear'"):
        grl_lambda(0.5, "linear")


def test_paper_learning_rate_schedule():
    assert paper_lr(0.0) == pytest.approx(0.01)
    assert paper_lr(1.0) == pytest.approx(0.01 / 11 ** 0.75)
    assert paper_lr(0.5, lr0=0.1) == pytest.approx(0.1 / 6 ** 0.75)
