"""One training loop for source-only, DANN, DANN without GRL and pseudo-labelling.

Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015: every step takes a
labelled source batch and an unlabelled target batch; the label loss is computed on the source, the
domain loss (logistic, target = 1) on both, and their sum is minimised; the GRL (factor ``lambda_p``)
turns the domain loss into a *confusion* objective for the features. ``source-only`` is the same loop
with ``lambda = 0`` (its domain head is a probe that cannot change the features); ``dann-no-grl``
replaces the GRL by the identity (report 001, Q1). ``pseudo-label`` trains its base method then runs
rounds of self-training on confident target predictions (see :mod:`~transferlab.adapt.pseudo_label`).

Per epoch it records the table of report 001, Figure 3.3: class and domain accuracy and loss on the
source and target test sets. With an output folder it writes ``history.csv`` and ``checkpoint.pt``
every epoch (``resume=True`` continues from them), then ``metrics.json``, ``curves.png`` and the
model folder.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from .._utils import write_json
from ..data import collate_skipping
from ..errors import ConfigError, DataError, TrainingError
from ..training import (History, capture_rng_state, check_finite, load_checkpoint, restore_rng_state,
                        save_checkpoint)
from .data import DomainData
from .grl import LAMBDA_SCHEDULES, grl_lambda, paper_lr
from .models import DANN, METHODS
from .pseudo_label import PseudoLabels, select_pseudo_labels

OPTIMIZERS = ("sgd", "adam")
CHECKPOINT = "checkpoint.pt"
CURVES = {"class accuracy": ["source_class_acc", "target_class_acc"],
          "domain accuracy": ["source_domain_acc", "target_domain_acc", "domain_acc"],
          "loss": ["train_class_loss", "train_domain_loss", "source_domain_loss", "target_domain_loss"]}


@dataclass
class AdaptConfig:
    """Options of one adaptation run (see ``docs/adapt.md``).

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

    def validate(self) -> "AdaptConfig":
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
        return self

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


def _key_changes(saved: dict | None, now: dict, prefix: str = "") -> list[str]:
    """``name: checkpoint X, now Y`` for every entry of ``now`` and ``saved`` that differs (nested dicts flattened)."""
    saved = saved if isinstance(saved, dict) else {}
    changes = []
    for name in list(now) + [k for k in saved if k not in now]:
        old, new = saved.get(name, "<not recorded>"), now.get(name, "<not recorded>")
        if isinstance(old, dict) and isinstance(new, dict):
            changes += _key_changes(old, new, f"{prefix}{name}.")
        elif old != new:
            what = f"{prefix}{name}"
            if what.startswith("data.") and what.endswith(("_train", "_test")):
                what += " images"
            changes.append(f"{what}: checkpoint {_short(old)}, now {_short(new)}")
    return changes


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_run_folder(out: Path | str | None, resume: bool) -> None:
    """Refuse to start a new run over one already in ``out`` (its checkpoint would be overwritten)."""
    if out is not None and not resume and (Path(out) / CHECKPOINT).exists():
        raise TrainingError(f"{out} already holds an adaptation run ({CHECKPOINT}); pass --resume to continue it "
                            "or choose another --out")


def train_adaptation(model: DANN, data: DomainData, config: AdaptConfig, *, out: Path | str | None = None,
                     resume: bool = False, device: torch.device | str = "cpu", workers: int = 0,
                     describe: dict | None = None, on_epoch: Callable[[dict], None] | None = None) -> AdaptResult:
    """Train ``model`` on ``data`` with ``config``; see the module docstring for what is written to ``out``."""
    config.validate()
    device = torch.device(device)
    model.to(device)
    reverse = model.grl.__class__.__name__ == "GradientReversal"
    if reverse != (config.method != "dann-no-grl"):
        raise ConfigError(f"method {config.method} needs a model built with reverse={not reverse}; "
                          "build it with build_dann(..., reverse=(method != 'dann-no-grl'))")
    lr = config.learning_rate
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    out = Path(out) if out is not None else None
    key = _config_key(config, describe or {}, data) if out is not None else None
    history, start, pseudo = History(), 0, PseudoLabels.empty()
    ckpt_path = out / CHECKPOINT if out is not None else None
    check_run_folder(out, resume)
    if resume:
        if ckpt_path is None:
            raise ConfigError("--resume needs the output folder of the run to continue (--out)")
        state = load_checkpoint(ckpt_path)
        if state.get("config") != key:
            changes = "; ".join(_key_changes(state.get("config"), key))
            raise TrainingError(f"checkpoint {ckpt_path} was written with other options or data ({changes}); "
                                "resume with the same options, source, target and split, or start a new --out "
                                "folder")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state["rng"])
        start = int(state["epoch"])
        pseudo = PseudoLabels(state["pseudo_indices"], state["pseudo_labels"], float(state["pseudo_threshold"]))
        history = History(r for r in History.from_csv(out / "history.csv").rows if int(r["epoch"]) <= start)

    n_src = len(data.source_train)
    steps = max(1, n_src // config.batch_size) if n_src > config.batch_size else 1
    total_steps = steps * config.total_epochs
    for epoch in range(start, config.total_epochs):
        t0 = time.perf_counter()
        # every epoch's batches depend on (seed, epoch) only, so a resumed run repeats an uninterrupted one
        target_iter = _cycle(lambda turn: _loader(data.target_train, config.batch_size, True,
                                                  config.seed * 7919 + 104729 * epoch + turn, workers, True),
                             "target training images")
        round_ = config.pseudo_round(epoch)
        if round_ is not None and (epoch - config.epochs) % config.pl_epochs == 0:
            pseudo = select_pseudo_labels(model, data.target_train, config.threshold(round_), config.batch_size,
                                          device, workers)
        pseudo_iter = None
        if round_ is not None and len(pseudo):
            pseudo_iter = _cycle(lambda turn: _loader(pseudo.dataset(data.target_train), config.batch_size, True,
                                                      config.seed * 31 + 1009 * epoch + turn, workers, True),
                                 "pseudo-labelled target images")
        sums = {"class": 0.0, "domain": 0.0, "pseudo": 0.0}
        model.train()
        lam = 0.0
        source_batches = _loader(data.source_train, config.batch_size, True, config.seed * 1000 + epoch, workers,
                                 drop_last=True)
        for step, (xs, ys, _, _) in enumerate(source_batches):
            if xs is None:
                continue
            xt, _ = next(target_iter)
            progress = (epoch * steps + step) / total_steps
            lam = grl_lambda(progress, config.lambda_schedule, config.grl_factor, config.gamma) \
                if config.adversarial else 0.0
            model.set_lambda(lam)
            if config.optimizer == "sgd":
                for group in optimizer.param_groups:
                    group["lr"] = paper_lr(progress, lr)
            parts = [xs, xt]
            if pseudo_iter is not None:
                xp, yp = next(pseudo_iter)
                parts.append(xp)
            x = torch.cat(parts).to(device)
            ns, nt = len(xs), len(xt)
            logits, dom = model(x)
            class_loss = F.cross_entropy(logits[:ns], ys.to(device))
            dom_target = torch.cat([torch.zeros(ns), torch.ones(nt)]).to(device)
            domain_loss = F.binary_cross_entropy_with_logits(dom[:ns + nt], dom_target)
            loss = class_loss + domain_loss
            if pseudo_iter is not None:
                pseudo_loss = F.cross_entropy(logits[ns + nt:], yp.to(device))
                loss = loss + config.pl_weight * pseudo_loss
                sums["pseudo"] += float(pseudo_loss.detach())
            check_finite(loss, what=f"{config.method} loss", epoch=epoch + 1, step=step + 1,
                         checkpoint=ckpt_path if ckpt_path is not None and ckpt_path.exists() else None)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums["class"] += float(class_loss.detach())
            sums["domain"] += float(domain_loss.detach())
        n_steps = step + 1
        src = evaluate_domain(model, data.source_test, 0, config.batch_size, device, True, workers)
        tgt = evaluate_domain(model, data.target_test, 1, config.batch_size, device, data.target_labelled, workers)
        row = {"epoch": epoch + 1, "phase": "base" if round_ is None else f"pseudo-{round_ + 1}",
               "lambda": round(lam, 6), "lr": optimizer.param_groups[0]["lr"],
               "train_class_loss": sums["class"] / n_steps, "train_domain_loss": sums["domain"] / n_steps,
               "train_pseudo_loss": sums["pseudo"] / n_steps if pseudo_iter is not None else None,
               "n_pseudo": len(pseudo) if round_ is not None else None,
               "pseudo_acc": pseudo.accuracy(data.target_train) if round_ is not None and data.target_labelled
               else None,
               **{f"source_{k}": v for k, v in src.items()}, **{f"target_{k}": v for k, v in tgt.items()},
               "domain_acc": (src["domain_acc"] * len(data.source_test) + tgt["domain_acc"] * len(data.target_test))
               / (len(data.source_test) + len(data.target_test)),
               "seconds": round(time.perf_counter() - t0, 3)}
        history.append(**row)
        if out is not None:
            save_checkpoint(ckpt_path, model=model.state_dict(), optimizer=optimizer.state_dict(),
                            rng=capture_rng_state(), epoch=epoch + 1, config=key,
                            pseudo_indices=pseudo.indices, pseudo_labels=pseudo.labels,
                            pseudo_threshold=pseudo.threshold)
            history.to_csv(out / "history.csv")
        if on_epoch is not None:
            on_epoch(row)
    metrics = _final_metrics(history, config, data)
    if out is not None:
        _write_outputs(out, model, history, metrics, config, data, describe or {})
    return AdaptResult(model, history, metrics)


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
