"""The training engine on a tiny hand-set task: resume == uninterrupted, NaN guard, early stopping, clipping,
history, the compatibility check and the caller's random state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from transferlab.errors import ConfigError, TrainingError
from transferlab.training import FitConfig, Task, fit, load_checkpoint, seeded


class Line(Task):
    """Fit y = 2x + 1 with one Linear(1, 1); batches shuffled by the global torch RNG, plus dropout-like noise."""

    finite = {"val_loss": "validation loss"}

    def __init__(self, lr: float = 0.1, poison_epoch: int | None = None, tag: str = "a") -> None:
        with seeded(0):
            self.net = nn.Linear(1, 1)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=lr, momentum=0.9)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=2, gamma=0.5)
        self.x = torch.linspace(-1, 1, 12).unsqueeze(1)
        self.y = 2 * self.x + 1
        self.poison_epoch, self.tag = poison_epoch, tag
        self.seen = 0

    def modules(self):
        return {"model": self.net}

    def optimizers(self):
        return {"main": self.opt}

    def schedulers(self):
        return {"lr": self.sched}

    def fingerprint(self):
        return {"tag": self.tag, "data": {"source_train": "abc"}}

    def start_epoch(self, epoch):
        self.epoch = epoch
        return torch.randperm(12).split(4)  # the global RNG: resume must restore it

    def train_step(self, idx, step):
        x = self.x[idx] + 0.01 * torch.randn(len(idx), 1)  # more global randomness
        loss = ((step.net()(x) - self.y[idx]) ** 2).mean()
        if self.poison_epoch is not None and step.epoch == self.poison_epoch:
            loss = loss * float("nan")
        step.update(loss, "main")
        self.seen += 1
        return {"loss": float(loss.detach()), "n": len(idx)}

    def end_epoch(self, epoch, train):
        with torch.no_grad():
            val = float(((self.net(self.x) - self.y) ** 2).mean())
        return {"train_loss": train["loss"], "val_loss": val, "lr": self.opt.param_groups[0]["lr"],
                "steps": train["steps"], "n": train["n"], "seconds": train["seconds"]}

    def score(self, row):
        return -row["val_loss"]

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = int(state["seen"])


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_resume_equals_an_uninterrupted_run(tmp_path):
    whole_task = Line()
    whole = fit(whole_task, FitConfig(epochs=5), tmp_path / "whole")

    def interrupt(state):
        if state.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(Line(), FitConfig(epochs=5), tmp_path / "split", on_epoch_end=interrupt)
    assert load_checkpoint(tmp_path / "split/checkpoint.pt")["epoch"] == 2
    fresh = Line(lr=0.1)
    with torch.no_grad():
        fresh.net.weight.fill_(123.0)  # everything must come from the checkpoint
    torch.manual_seed(999)  # and the caller's random state must not matter
    resumed = fit(fresh, FitConfig(epochs=5), tmp_path / "split", resume=True)
    assert torch.equal(whole_task.net.weight, fresh.net.weight) and torch.equal(whole_task.net.bias, fresh.net.bias)
    assert _strip(whole.history.rows) == _strip(resumed.history.rows) and len(whole.history.rows) == 5
    assert fresh.seen == whole_task.seen == 15  # the task's own state came back too
    assert [r["lr"] for r in resumed.history.rows] == [0.1, 0.1, 0.05, 0.05, 0.025]  # the scheduler's


def test_history_weights_each_step_by_n_and_counts_steps(tmp_path):
    class Weighted(Line):
        def start_epoch(self, epoch):
            return [torch.arange(k) for k in (1, 2, 3)]

        def train_step(self, idx, step):
            step.update(self.net(self.x[idx]).sum() * 0, "main")
            return {"loss": float(len(idx)), "n": len(idx)}

    state = fit(Weighted(), FitConfig(epochs=2), None)
    row = state.history.rows[0]
    assert row["epoch"] == 1 and row["steps"] == 3 and row["n"] == 6
    assert row["train_loss"] == pytest.approx((1 + 4 + 9) / 6)  # sum(n * value) / sum(n)
    assert [r["epoch"] for r in state.history.rows] == [1, 2]


def test_nan_guard_stops_at_once_keeping_the_last_good_checkpoint(tmp_path):
    task = Line(poison_epoch=2)
    with pytest.raises(TrainingError, match=r"training loss became nan \(epoch 2, step 1\): training stopped; "
                                            r"the last good checkpoint is .*checkpoint\.pt"):
        fit(task, FitConfig(epochs=4), tmp_path)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 1 and torch.isfinite(state["model"]["weight"]).all()
    assert torch.isfinite(task.net.weight).all()  # the NaN loss never reached the weights


def test_nan_in_a_validation_number_stops_too(tmp_path):
    class BadVal(Line):
        def end_epoch(self, epoch, train):
            return {**super().end_epoch(epoch, train), "val_loss": float("inf") if epoch == 1 else 0.5}

    with pytest.raises(TrainingError, match=r"validation loss became inf \(epoch 2\)"):
        fit(BadVal(), FitConfig(epochs=3), tmp_path)


def test_early_stopping_keeps_the_best_epoch_and_its_weights(tmp_path):
    class Scripted(Line):
        def __init__(self):
            super().__init__()
            self.epochs_scored = 0

        def score(self, row):
            self.epochs_scored += 1
            return (0.5, 0.7, 0.7, 0.6, 0.9)[self.epochs_scored - 1]

    state = fit(Scripted(), FitConfig(epochs=5, patience=2, best="best.pt"), tmp_path)
    assert state.stopped_early and state.epoch == 4 and state.best["epoch"] == 2  # 0.7 not beaten twice
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 2
    assert state.best_row is state.history.rows[1]
    without = fit(Scripted(), FitConfig(epochs=5, patience=None), None)
    assert not without.stopped_early and without.epoch == 5 and without.best["epoch"] == 5


def test_gradient_clipping_bounds_the_update_exactly():
    class OneStep(Task):
        def __init__(self):
            self.w = nn.Linear(2, 1, bias=False)
            nn.init.zeros_(self.w.weight)
            self.opt = torch.optim.SGD(self.w.parameters(), lr=1.0)

        def modules(self):
            return {"model": self.w}

        def optimizers(self):
            return {"main": self.opt}

        def start_epoch(self, epoch):
            return [None, 1]  # None: not ready, skipped without a step

        def train_step(self, batch, step):
            step.update(step.net()(torch.tensor([[3.0, 4.0]])).sum(), "main")  # gradient (3, 4), norm 5

    clipped, free = OneStep(), OneStep()
    assert fit(clipped, FitConfig(epochs=1, grad_clip=0.5)).row["steps"] == 1
    fit(free, FitConfig(epochs=1))
    assert torch.allclose(clipped.w.weight, torch.tensor([[-0.3, -0.4]]))  # (3, 4) scaled to norm 0.5
    assert torch.equal(free.w.weight, torch.tensor([[-3.0, -4.0]]))


def test_one_compatibility_check_on_resume_and_no_overwrite(tmp_path):
    fit(Line(), FitConfig(epochs=1, what="a line run"), tmp_path)
    with pytest.raises(TrainingError, match=r"already holds a line run \(checkpoint.pt\); pass --resume"):
        fit(Line(), FitConfig(epochs=2, what="a line run"), tmp_path)
    with pytest.raises(TrainingError, match=r"cannot resume .*the options differ from the interrupted run "
                                            r"\(tag: checkpoint 'a', now 'b'\)"):
        fit(Line(tag="b"), FitConfig(epochs=2), tmp_path, resume=True)

    class OtherData(Line):
        def fingerprint(self):
            return {"tag": "a", "data": {"source_train": "xyz"}}

    with pytest.raises(TrainingError, match=r"data.source_train images: checkpoint 'abc', now 'xyz'"):
        fit(OtherData(), FitConfig(epochs=2), tmp_path, resume=True)
    with pytest.raises(TrainingError, match="no checkpoint at"):
        fit(Line(), FitConfig(epochs=2), tmp_path / "none", resume=True)
    with pytest.raises(ConfigError, match="--resume needs --out"):
        fit(Line(), FitConfig(epochs=2), None, resume=True)
    with pytest.raises(ConfigError, match="--grad-clip must be positive"):
        fit(Line(), FitConfig(epochs=1, grad_clip=0.0))
    assert fit(Line(), FitConfig(epochs=2), tmp_path, resume=True).epoch == 2  # same options: it continues


def test_the_callers_random_state_is_unchanged_and_does_not_matter():
    def snapshot():
        return random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()

    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    before = snapshot()
    a = Line()
    fit(a, FitConfig(epochs=2, seed=3))
    after = snapshot()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and torch.equal(before[2], after[2])
    torch.manual_seed(77)
    b = Line()
    fit(b, FitConfig(epochs=2, seed=3))
    assert torch.equal(a.net.weight, b.net.weight)  # seeded by FitConfig.seed, not by the caller
    c = Line()
    fit(c, FitConfig(epochs=2, seed=4))
    assert not torch.equal(a.net.weight, c.net.weight)
