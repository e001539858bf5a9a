"""Source-only, DANN, DANN without GRL and pseudo-labelling as one task on the training engine.

Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015: every step takes a
labelled source batch and an unlabelled target batch; the label loss is computed on the source, the
domain loss (logistic, target = 1) on both, and their sum is minimised; the GRL (factor ``lambda_p``)
turns the domain loss into a *confusion* objective for the features. ``source-only`` is the same loop
with ``lambda = 0`` (its domain head is a probe that cannot change the features); ``dann-no-grl``
replaces the GRL by the identity (report 001, Q1). ``pseudo-label`` trains its base method then runs
rounds of self-training on confident target predictions (see :mod:`~transferlab.adapt.pseudo_label`).

Per epoch it records the table of report 001, Figure 3.3: class and domain accuracy and loss on the
source and target test sets. :class:`AdaptTask` is run by :func:`transferlab.training.fit` (NaN guard,
checkpoint, exact resume, history); with an output folder it writes ``history.csv`` and ``checkpoint.pt``
every epoch (``resume=True`` continues from them), then ``metrics.json``, ``curves.png`` and the
model folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from .._utils import write_json
from ..data import collate_skipping
from ..errors import ConfigError, DataError, TrainingError, check_finite_fields
from ..training import FitConfig, FitState, History, Task, fit
from ..training import check_run_folder as _check_run_folder
from .data import DomainData
from .grl import LAMBDA_SCHEDULES, grl_lambda, paper_lr
from .models import DANN, METHODS
from .pseudo_label import PseudoLabels, select_pseudo_labels

OPTIMIZERS = ("sgd", "adam")
CHECKPOINT = "checkpoint.pt"
CURVES = {"class accuracy": ["source_class_acc", "target_class_acc"],
          "domain accuracy": ["source_domain_acc", "target_domain_acc", "domain_acc"],
          "loss": ["train_class_loss", "train_domain_loss", "source_domain_loss", "target_domain_loss"]}


@dataclass(frozen=True)
class AdaptConfig:
    """Options of one adaptation run (see ``docs/adapt.md``); frozen, :meth:`resolved` validates them.

    ``optimizer="sgd"`` is the paper's: momentum 0.9 and ``lr_p = lr / (1 + 10 p) ** 0.75``
    (``lr`` default 0.01); ``"adam"`` keeps ``lr`` (default 1e-3) constant. ``grl_factor`` is the
    maximum GRL factor, reached by the ``"paper"`` schedule or held by ``"constant"``.
    Pseudo-labelling (``method="pseudo-label"``) trains ``pl_base`` for ``epochs`` then runs
    ``pl_rounds`` rounds of ``pl_epochs`` epochs; round ``r`` keeps the target images whose top
    softmax probability reaches a threshold going linearly from ``pl_threshold`` to ``pl_threshold_end``.
    """

    method: str = "dann"
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None
    lambda_schedule: str = "paper"
    grl_factor: float = 1.0
    gamma: float = 10.0
    pl_base: str = "source-only"
    pl_rounds: int = 3
    pl_epochs: int = 2
    pl_threshold: float = 0.95
    pl_threshold_end: float | None = None
    pl_weight: float = 1.0
    seed: int = 0

    def resolved(self) -> "AdaptConfig":
        """This configuration validated, with the optimiser's default learning rate filled in."""
        check_finite_fields(self)
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        check(self.method in METHODS, f"unknown --method {self.method!r}; expected one of {', '.join(METHODS)}")
        check(self.optimizer in OPTIMIZERS, f"unknown --optimizer {self.optimizer!r}; expected sgd (the paper's "
                                            "schedule) or adam")
        check(self.lambda_schedule in LAMBDA_SCHEDULES, f"unknown --lambda-schedule {self.lambda_schedule!r}; "
                                                        f"expected {' or '.join(LAMBDA_SCHEDULES)}")
        check(self.epochs >= 1, f"--epochs must be at least 1; got {self.epochs}")
        check(self.batch_size >= 2, f"--batch-size must be at least 2; got {self.batch_size}")
        check(self.lr is None or self.lr > 0, f"--lr must be positive; got {self.lr}")
        check(self.grl_factor >= 0, f"--grl-factor is the size of the reversed gradient and must be >= 0; got "
                                    f"{self.grl_factor} (the GRL already supplies the minus sign)")
        check(self.pl_base in ("source-only", "dann"), f"--pl-base must be source-only or dann; got {self.pl_base!r}")
        check(self.pl_rounds >= 1 and self.pl_epochs >= 1, "--pl-rounds and --pl-epochs must be at least 1")
        for name in ("pl_threshold", "pl_threshold_end"):
            value = getattr(self, name)
            check(value is None or 0.0 < value <= 1.0, f"--{name.replace('_', '-')} is a softmax probability in "
                                                       f"(0, 1]; got {value}")
        return replace(self, lr=self.learning_rate)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (0.01 if self.optimizer == "sgd" else 1e-3)

    @property
    def total_epochs(self) -> int:
        return self.epochs + (self.pl_rounds * self.pl_epochs if self.method == "pseudo-label" else 0)

    @property
    def adversarial(self) -> bool:
        """Does the domain loss reach the features (through the GRL or, for the ablation, directly)?"""
        return self.method in ("dann", "dann-no-grl") or (self.method == "pseudo-label" and self.pl_base == "dann")

    def pseudo_round(self, epoch: int) -> int | None:
        """The pseudo-labelling round that 0-based ``epoch`` belongs to (None during the base phase)."""
        if self.method != "pseudo-label" or epoch < self.epochs:
            return None
        return (epoch - self.epochs) // self.pl_epochs

    def threshold(self, round_: int) -> float:
        end = self.pl_threshold if self.pl_threshold_end is None else self.pl_threshold_end
        if self.pl_rounds == 1:
            return self.pl_threshold
        return self.pl_threshold + (end - self.pl_threshold) * round_ / (self.pl_rounds - 1)


@dataclass
class AdaptResult:
    model: DANN
    history: History
    metrics: dict
    out: Path | None = None  # the run folder


def _loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int, workers: int = 0,
            drop_last: bool = False) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=workers,
                      collate_fn=collate_skipping, drop_last=drop_last and len(dataset) > batch_size)


def _cycle(make: Callable[[int], DataLoader], what: str):
    """Endless batches (x, y) from loaders rebuilt with a new seed at each pass.

    A pass that yields no batch (no image of ``what`` could be decoded) would loop forever: DataError.
    """
    turn = 0
    while True:
        loader, produced = make(turn), False
        for x, y, _, _ in loader:
            if x is not None:
                produced = True
                yield x, y
        if not produced:
            raise DataError(f"none of the {len(loader.dataset)} {what} could be decoded, so there is no batch "
                            "to train on; check the target folder (unreadable images are skipped)")
        turn += 1


@torch.no_grad()
def evaluate_domain(model: DANN, dataset: Dataset, domain: int, batch_size: int, device: torch.device,
                    labelled: bool = True, workers: int = 0) -> dict[str, float | None]:
    """Class accuracy/loss (if labelled) and domain accuracy/loss of ``model`` on one domain's images."""
    model.eval()
    n = correct = dom_correct = 0
    class_loss = dom_loss = 0.0
    for x, y, _, _ in _loader(dataset, batch_size * 2, False, 0, workers):
        if x is None:
            continue
        x, y = x.to(device), y.to(device)
        logits, dom = model(x)
        target = torch.full_like(dom, float(domain))
        dom_loss += float(F.binary_cross_entropy_with_logits(dom, target, reduction="sum"))
        dom_correct += int(((dom > 0).float() == target).sum())
        if labelled:
            class_loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
        n += len(x)
    if n == 0:
        raise TrainingError("no readable image to evaluate on; check the data folders")
    return {"class_acc": correct / n if labelled else None, "class_loss": class_loss / n if labelled else None,
            "domain_acc": dom_correct / n, "domain_loss": dom_loss / n}


def _config_key(config: AdaptConfig, extra: dict, data: DomainData) -> dict:
    """What a resumed run must keep: the options (but ``epochs``), the model description and the data
    (source and target, test fraction, and a digest of every split: see :meth:`DomainData.fingerprint`)."""
    key = asdict(config)
    key.pop("epochs")  # more epochs may be asked for on resume
    return {**key, **extra, "data": data.fingerprint()}


def check_run_folder(out: Path | str | None, resume: bool) -> None:
    """Refuse to start a new run over one already in ``out`` (its checkpoint would be overwritten)."""
    if out is not None:
        _check_run_folder(out, CHECKPOINT, resume, "an adaptation run")


class AdaptTask(Task):
    """One adaptation run (see the module docstring) as a task on :func:`~transferlab.training.fit`."""

    def __init__(self, model: DANN, data: DomainData, config: AdaptConfig, device: torch.device, workers: int = 0,
                 describe: dict | None = None) -> None:
        reverse = model.grl.__class__.__name__ == "GradientReversal"
        if reverse != (config.method != "dann-no-grl"):
            raise ConfigError(f"method {config.method} needs a model built with reverse={not reverse}; "
                              "build it with build_dann(..., reverse=(method != 'dann-no-grl'))")
        self.model, self.data, self.config, self.device, self.workers = model, data, config, device, workers
        lr = config.learning_rate
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9) if config.optimizer == "sgd" \
            else torch.optim.Adam(model.parameters(), lr=lr)
        self.key = _config_key(config, describe or {}, data)
        self.pseudo = PseudoLabels.empty()
        n_src = len(data.source_train)
        self.steps = max(1, n_src // config.batch_size) if n_src > config.batch_size else 1
        self.total_steps = self.steps * config.total_epochs

    def modules(self):
        return {"model": self.model}

    def optimizers(self):
        return {"main": self.optimizer}

    def fingerprint(self) -> dict:
        return self.key

    def start_epoch(self, epoch: int):
        config, data, workers = self.config, self.data, self.workers
        self.epoch, self.lam = epoch, 0.0
        # every epoch's batches depend on (seed, epoch) only, so a resumed run repeats an uninterrupted one
        self.target_iter = _cycle(lambda turn: _loader(data.target_train, config.batch_size, True,
                                                       config.seed * 7919 + 104729 * epoch + turn, workers, True),
                                  "target training images")
        self.round = config.pseudo_round(epoch)
        if self.round is not None and (epoch - config.epochs) % config.pl_epochs == 0:
            self.pseudo = select_pseudo_labels(self.model, data.target_train, config.threshold(self.round),
                                               config.batch_size, self.device, workers)
        self.pseudo_iter = None
        if self.round is not None and len(self.pseudo):
            pseudo_set = self.pseudo.dataset(data.target_train)
            self.pseudo_iter = _cycle(lambda turn: _loader(pseudo_set, config.batch_size, True,
                                                           config.seed * 31 + 1009 * epoch + turn, workers, True),
                                      "pseudo-labelled target images")
        self.model.train()
        for step, (xs, ys, _, _) in enumerate(_loader(data.source_train, config.batch_size, True,
                                                      config.seed * 1000 + epoch, workers, drop_last=True)):
            yield None if xs is None else (step, xs, ys)

    def train_step(self, batch, st) -> dict:
        config, device = self.config, st.device
        step, xs, ys = batch
        xt, _ = next(self.target_iter)
        progress = (self.epoch * self.steps + step) / self.total_steps
        self.lam = grl_lambda(progress, config.lambda_schedule, config.grl_factor, config.gamma) \
            if config.adversarial else 0.0
        self.model.set_lambda(self.lam)
        if config.optimizer == "sgd":
            for group in self.optimizer.param_groups:
                group["lr"] = paper_lr(progress, config.learning_rate)
        parts = [xs, xt]
        if self.pseudo_iter is not None:
            xp, yp = next(self.pseudo_iter)
            parts.append(xp)
        ns, nt = len(xs), len(xt)
        logits, dom = st.net()(torch.cat(parts).to(device))
        class_loss = F.cross_entropy(logits[:ns], ys.to(device))
        dom_target = torch.cat([torch.zeros(ns), torch.ones(nt)]).to(device)
        domain_loss = F.binary_cross_entropy_with_logits(dom[:ns + nt], dom_target)
        loss = class_loss + domain_loss
        pseudo_loss = None
        if self.pseudo_iter is not None:
            pseudo_loss = F.cross_entropy(logits[ns + nt:], yp.to(device))
            loss = loss + config.pl_weight * pseudo_loss
        st.update(loss, "main", what=f"{config.method} loss")
        return {"class": float(class_loss.detach()), "domain": float(domain_loss.detach()),
                "pseudo": None if pseudo_loss is None else float(pseudo_loss.detach())}

    def end_epoch(self, epoch: int, train: dict) -> dict:
        config, data, round_ = self.config, self.data, self.round
        src = evaluate_domain(self.model, data.source_test, 0, config.batch_size, self.device, True, self.workers)
        tgt = evaluate_domain(self.model, data.target_test, 1, config.batch_size, self.device, data.target_labelled,
                              self.workers)
        return {"phase": "base" if round_ is None else f"pseudo-{round_ + 1}",
                "lambda": round(self.lam, 6), "lr": self.optimizer.param_groups[0]["lr"],
                "train_class_loss": train.get("class"), "train_domain_loss": train.get("domain"),
                "train_pseudo_loss": train.get("pseudo") if self.pseudo_iter is not None else None,
                "n_pseudo": len(self.pseudo) if round_ is not None else None,
                "pseudo_acc": self.pseudo.accuracy(data.target_train) if round_ is not None and data.target_labelled
                else None,
                **{f"source_{k}": v for k, v in src.items()}, **{f"target_{k}": v for k, v in tgt.items()},
                "domain_acc": (src["domain_acc"] * len(data.source_test) + tgt["domain_acc"] * len(data.target_test))
                / (len(data.source_test) + len(data.target_test)),
                "seconds": round(train["seconds"], 3)}

    def state_dict(self) -> dict:
        return {"pseudo_indices": self.pseudo.indices, "pseudo_labels": self.pseudo.labels,
                "pseudo_threshold": self.pseudo.threshold}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.pseudo = PseudoLabels(state["pseudo_indices"], state["pseudo_labels"],
                                       float(state["pseudo_threshold"]))


def train_adaptation(model: DANN, data: DomainData, config: AdaptConfig, *, out: Path | str | None = None,
                     resume: bool = False, device: torch.device | str = "cpu", workers: int = 0,
                     describe: dict | None = None, on_epoch: Callable[[dict], None] | None = None) -> AdaptResult:
    """Train ``model`` on ``data`` with ``config``; see the module docstring for what is written to ``out``."""
    config = config.resolved()
    device = torch.device(device)
    out = Path(out) if out is not None else None
    check_run_folder(out, resume)
    task = AdaptTask(model, data, config, device, workers, describe)

    def after_epoch(state: FitState) -> None:
        if on_epoch is not None:
            on_epoch(state.row)

    state = fit(task, FitConfig(epochs=config.total_epochs, seed=config.seed, checkpoint=CHECKPOINT,
                                what="an adaptation run"), out, resume=resume, device=device,
                on_epoch_end=after_epoch)
    metrics = _final_metrics(state.history, config, data)
    if out is not None:
        _write_outputs(out, model, state.history, metrics, config, data, describe or {})
    return AdaptResult(model, state.history, metrics)


def _final_metrics(history: History, config: AdaptConfig, data: DomainData) -> dict:
    last = history.rows[-1]
    keys = ("source_class_acc", "target_class_acc", "source_domain_acc", "target_domain_acc", "domain_acc",
            "source_class_loss", "target_class_loss", "source_domain_loss", "target_domain_loss", "lambda")
    tail = [float(r["domain_acc"]) for r in history.rows[-4:]]
    return {"method": config.method, "epochs": last["epoch"], **{k: last.get(k) for k in keys},
            "domain_acc_last4": sum(tail) / len(tail),  # the adversarial game oscillates: a steadier reading
            "n_source_train": len(data.source_train), "n_target_train": len(data.target_train),
            "n_source_test": len(data.source_test), "n_target_test": len(data.target_test),
            "target_labelled": data.target_labelled, "classes": data.classes,
            "train_seconds": round(sum(float(r["seconds"]) for r in history.rows), 3)}


def _write_outputs(out: Path, model: DANN, history: History, metrics: dict, config: AdaptConfig,
                   data: DomainData, describe: dict) -> None:
    from ..classify.model_file import write_model_folder

    write_json(out / "metrics.json", metrics)
    history.plot(out / "curves.png", CURVES, title=f"{config.method}: source vs target")
    write_model_folder(out / "model", {"kind": "dann", "method": config.method, "classes": data.classes,
                                       **describe}, model.state_dict())
