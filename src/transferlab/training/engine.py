"""The one training engine: a :class:`Task` says what a step, a validation and its own state are; :func:`fit` does the rest.

``fit`` owns the devices, float16 autocast + ``GradScaler`` (CUDA only), gradient clipping
(``torch.nn.utils.clip_grad_norm_``), the NaN guard, the checkpoint (atomic, after every epoch), resume
with one compatibility check, early stopping, the history and ``DistributedDataParallel`` under
torchrun. It runs inside a fork of the random state: seeded from ``FitConfig.seed`` (on resume, the
checkpoint's state), and the caller's Python, NumPy and torch random state is unchanged afterwards.

Written by hand rather than on Lightning, Ignite or Accelerate: each brings a framework (its own loop,
callbacks and checkpoint format) for what is a few hundred lines here; the parts that are hard to get
right (autocast, GradScaler, clip_grad_norm_, DDP) are torch's own.
"""

from __future__ import annotations

import contextlib
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, TrainingError, check_finite_fields
from . import distributed as _dist
from .checkpoint import (capture_rng_state, check_checkpoint, check_finite, load_checkpoint, restore_rng_state,
                         restore_state, save_checkpoint)
from .history import History


class Task(ABC):
    """What one kind of training computes; :func:`fit` calls these (override what you need).

    Required: :meth:`modules`, :meth:`optimizers`, :meth:`start_epoch` (the epoch's batches),
    :meth:`train_step` (calls ``step.update(loss, name)`` for each optimiser update) and
    :meth:`end_epoch` (validation: the history row). Optional: schedulers (stepped once per epoch),
    :meth:`fingerprint` (what a resumed run must share), :meth:`state_dict` (extra state to checkpoint),
    :meth:`score` (greater is better: best epoch and early stopping), ``finite`` (row keys the NaN
    guard checks, with their names in messages) and :meth:`ready` (can this batch be trained on).
    """

    finite: dict[str, str] = {}
    find_unused_parameters: bool = False

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Required (see the class docstring)."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Required (see the class docstring)."""

    def schedulers(self) -> dict[str, Any]:
        return {}

    def fingerprint(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def start_epoch(self, epoch: int) -> Iterable[Any]:
        """The training batches of 0-based ``epoch``."""

    def ready(self, batch: Any) -> bool:
        return batch is not None

    @abstractmethod
    def train_step(self, batch: Any, step: "Step") -> dict[str, float] | None:
        """One step; return numbers to average over the epoch (``"n"``: this step's weight, default 1)."""

    def end_epoch(self, epoch: int, train: dict[str, Any]) -> dict[str, Any]:
        """The history row of 0-based ``epoch`` (``train``: the epoch's means, ``steps``, ``n``, ``seconds``)."""
        return dict(train)

    def score(self, row: dict[str, Any]) -> Any:
        return None

    def bind(self, nets: dict[str, nn.Module]) -> None:
        """Called once before training with the networks as trained (DDP-wrapped under torchrun)."""
        self.nets = nets

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@dataclass(frozen=True)
class FitConfig:
    """How to run a task: epochs, seed, AMP, clipping, patience and the run folder's file names.

    ``checkpoint`` and ``best`` (best weights, when the task has a :meth:`Task.score`) are relative to
    ``out``; ``what`` names the run in "already holds ..." messages. Validated by :meth:`resolved`.
    """

    epochs: int
    seed: int = 0
    amp: bool = False
    grad_clip: float | None = None
    patience: int | None = None
    checkpoint: str = "checkpoint.pt"
    best: str | None = None
    history: str | None = "history.csv"
    what: str = "a training run"

    def resolved(self) -> "FitConfig":
        check_finite_fields(self)
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1; got {self.epochs}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"--grad-clip must be positive; got {self.grad_clip}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"--patience must be at least 1 (or omitted); got {self.patience}")
        return self


@dataclass
class FitState:
    """Where a fit stands (passed to ``on_epoch_end``; returned at the end)."""

    epoch: int = 0
    history: History = field(default_factory=History)
    best: dict[str, Any] = field(default_factory=lambda: {"score": None, "epoch": 0, "bad_epochs": 0})
    stopped_early: bool = False
    nets: dict[str, nn.Module] = field(default_factory=dict)

    @property
    def row(self) -> dict[str, Any]:
        return self.history.rows[-1] if self.history.rows else {}

    @property
    def best_row(self) -> dict[str, Any]:
        epoch = int(self.best["epoch"])
        return self.history.rows[epoch - 1] if epoch else self.row


@contextlib.contextmanager
def seeded(seed: int, devices: list[int] | None = None) -> Iterator[None]:
    """Seed Python, NumPy and torch for the block; the previous random state is back afterwards."""
    py, npy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=devices or []):
        random.seed(seed)
        np.random.seed(seed % (2 ** 32))
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def check_run_folder(out: Path | str | None, checkpoint: str, resume: bool, what: str = "a training run") -> None:
    """``resume`` needs the checkpoint; a new run never overwrites one (call before writing anything)."""
    if out is None:
        if resume:
            raise ConfigError("--resume needs --out: the folder of the interrupted run")
        return
    path = Path(out) / checkpoint
    if resume and not path.is_file():
        raise TrainingError(f"no checkpoint at {path}; start without --resume or point --out to the interrupted run")
    if not resume and path.exists():
        raise TrainingError(f"{out} already holds {what} ({checkpoint}); pass --resume to continue it "
                            "or choose another --out")


def key_changes(saved: dict | None, now: dict, prefix: str = "", before: str = "checkpoint") -> list[str]:
    """``name: checkpoint X, now Y`` (``before`` names the earlier side) for every entry that differs (nested
    dicts flattened with dots)."""
    saved = saved if isinstance(saved, dict) else {}
    changes = []
    for name in list(now) + [k for k in saved if k not in now]:
        old, new = saved.get(name, "<not recorded>"), now.get(name, "<not recorded>")
        if isinstance(old, dict) and isinstance(new, dict):
            changes += key_changes(old, new, f"{prefix}{name}.", before)
        elif _plain(old) != _plain(new):
            what = f"{prefix}{name}"
            if what.startswith("data.") and what.endswith(("_train", "_test")):
                what += " images"
            changes.append(f"{what}: {before} {_short(old)}, now {_short(new)}")
    return changes


def _plain(value: Any) -> Any:  # tuples come back from a checkpoint as they went in; JSON-ish lists compare equal
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Step:
    """One training step as a task sees it: the (DDP-wrapped) networks, autocast and :meth:`update`."""

    def __init__(self, engine: "_Engine", epoch: int, index: int) -> None:
        self._engine, self.epoch, self.index = engine, epoch, index  # both 1-based
        self.device = engine.ctx.device

    def net(self, name: str = "model") -> nn.Module:
        return self._engine.state.nets[name]

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self._engine.use_amp)

    def update(self, loss: torch.Tensor, optimizer: str = "main", what: str = "training loss") -> None:
        """NaN guard, zero_grad, (scaled) backward, clipping, optimiser step."""
        eng = self._engine
        probe = _dist.all_reduce_sum([float(loss.detach())], eng.ctx)[0] if eng.ctx.enabled else loss
        last = eng.last_path if eng.last_path is not None and eng.last_path.is_file() else None
        check_finite(probe, what=what, epoch=self.epoch, step=self.index, checkpoint=last)
        opt, scaler = eng.optimizers[optimizer], eng.scalers[optimizer]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if eng.cfg.grad_clip is not None:
            scaler.unscale_(opt)
            params = [p for g in opt.param_groups for p in g["params"] if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(params, eng.cfg.grad_clip)
        scaler.step(opt)
        scaler.update()


class _Engine:
    def __init__(self, task: Task, cfg: FitConfig, out: Path | None, ctx: _dist.DistContext) -> None:
        self.task, self.cfg, self.out, self.ctx = task, cfg, out, ctx
        self.use_amp = bool(cfg.amp and ctx.device.type == "cuda")  # mixed precision on GPU only
        self.modules = task.modules()
        for module in self.modules.values():
            module.to(ctx.device)
        self.optimizers = task.optimizers()
        self.schedulers = task.schedulers()
        self.scalers = {name: torch.amp.GradScaler("cuda", enabled=self.use_amp) for name in self.optimizers}
        nets = {name: _dist.wrap_model(m, ctx, task.find_unused_parameters)
                if any(p.requires_grad for p in m.parameters()) else m for name, m in self.modules.items()}
        self.state = FitState(nets=nets)
        task.bind(nets)
        self.last_path = out / cfg.checkpoint if out is not None else None

    # ---------------------------------------------------------------- checkpoints
    def resume(self) -> None:
        assert self.last_path is not None
        saved = load_checkpoint(self.last_path, map_location="cpu")  # RNG states must stay on the CPU
        check_checkpoint(saved, self.last_path, (*self.modules, "optimizers", "schedulers", "scalers", "rng", "epoch",
                                                 "history", "best", "stopped_early"))
        changes = key_changes(saved.get("fingerprint"), self.task.fingerprint())
        if changes:
            raise TrainingError(f"cannot resume {self.out}: the options differ from the interrupted run "
                                f"({'; '.join(changes)}); resume with the same options and data, or choose "
                                "another --out")
        for name, module in self.modules.items():
            restore_state(module, saved[name], self.last_path, f"{name} network")
        for group, objects in (("optimizers", self.optimizers), ("schedulers", self.schedulers),
                               ("scalers", self.scalers)):
            for name, obj in objects.items():
                if name not in saved[group]:
                    raise TrainingError(f"checkpoint {self.last_path} has no {group[:-1]} {name!r}; resume with "
                                        "the same options, or start again with another --out")
                restore_state(obj, saved[group][name], self.last_path, f"{name} {group[:-1]}")
        self.task.load_state_dict(saved.get("task", {}))
        rngs = saved["rng"]
        restore_rng_state(rngs[self.ctx.rank] if len(rngs) == self.ctx.world_size else rngs[0])
        self.state.epoch = int(saved["epoch"])
        self.state.history = History(saved["history"])
        self.state.best = dict(saved["best"])
        self.state.stopped_early = bool(saved["stopped_early"])

    def save(self, improved: bool) -> None:
        if self.out is None:
            return
        rngs = _dist.all_gather_objects(capture_rng_state(), self.ctx)  # collective: every rank takes part
        if self.ctx.is_main:
            weights = {name: m.state_dict() for name, m in self.modules.items()}
            if improved and self.cfg.best:
                save_checkpoint(self.out / self.cfg.best, epoch=self.state.epoch, **weights)
            save_checkpoint(self.last_path, **weights, epoch=self.state.epoch,
                            optimizers={k: o.state_dict() for k, o in self.optimizers.items()},
                            schedulers={k: s.state_dict() for k, s in self.schedulers.items()},
                            scalers={k: s.state_dict() for k, s in self.scalers.items()},
                            rng=rngs, history=self.state.history.rows, best=dict(self.state.best),
                            stopped_early=self.state.stopped_early, fingerprint=self.task.fingerprint(),
                            task=self.task.state_dict(), world_size=self.ctx.world_size)
            if self.cfg.history:
                self.state.history.to_csv(self.out / self.cfg.history)
        _dist.barrier(self.ctx)

    # ---------------------------------------------------------------- epochs
    def train_epoch(self, bar) -> dict[str, Any]:
        ctx, epoch = self.ctx, self.state.epoch
        sums: dict[str, float] = {}
        weights: dict[str, float] = {}
        steps, total = 0, 0.0
        job = bar.add_task(f"epoch {epoch + 1}/{self.cfg.epochs}", total=None, stats="")
        start = time.perf_counter()
        for index, batch in enumerate(self.task.start_epoch(epoch), start=1):
            ready = float(self.task.ready(batch))
            # Under DDP every process must take the same steps (one skipping alone would leave the others
            # waiting in the all-reduce forever): a batch is trained on only where every process can.
            if ctx.enabled:
                ready = float(_dist.all_reduce_sum([ready], ctx)[0] == ctx.world_size)
            if not ready:
                bar.advance(job)
                continue
            stats = dict(self.task.train_step(batch, Step(self, epoch + 1, index)) or {})
            n = float(stats.pop("n", 1))
            for key, value in stats.items():
                if value is not None:
                    sums[key] = sums.get(key, 0.0) + float(value) * n
                    weights[key] = weights.get(key, 0.0) + n
            steps, total = steps + 1, total + n
            elapsed = max(time.perf_counter() - start, 1e-9)
            text = "  ".join(f"{k} {sums[k] / weights[k]:.4g}" for k in list(sums)[:3])
            bar.update(job, advance=1, stats=f"{text}  {total * ctx.world_size / elapsed:.1f}/s")
        seconds = time.perf_counter() - start
        bar.remove_task(job)
        if ctx.enabled:
            keys = sorted(set().union(*_dist.all_gather_objects(sorted(sums), ctx)))
            reduced = _dist.all_reduce_sum([sums.get(k, 0.0) for k in keys] + [weights.get(k, 0.0) for k in keys]
                                           + [total], ctx)
            sums, weights = dict(zip(keys, reduced[:len(keys)])), dict(zip(keys, reduced[len(keys):-1]))
            total = reduced[-1]
        means = {k: sums[k] / weights[k] for k in sums if weights[k]}
        return {**means, "steps": steps, "n": int(total) if float(total).is_integer() else total, "seconds": seconds}

    def run(self, progress: bool, on_epoch_end: Callable[[FitState], None] | None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[stats]}"), TimeElapsedColumn()]
        state, task = self.state, self.task
        with Progress(*columns, disable=not (progress and self.ctx.is_main), transient=True) as bar:
            while state.epoch < self.cfg.epochs and not state.stopped_early:
                train = self.train_epoch(bar)
                row = task.end_epoch(state.epoch, train)
                for scheduler in self.schedulers.values():
                    scheduler.step()
                last = self.last_path if self.last_path is not None and self.last_path.is_file() else None
                for key, what in task.finite.items():
                    if row.get(key) is not None:
                        check_finite(row[key], what=what, epoch=state.epoch + 1, checkpoint=last)
                state.epoch += 1
                state.history.append(epoch=state.epoch, **row)
                score = task.score(row)
                improved = score is None or state.best["score"] is None or tuple(_as_tuple(score)) > tuple(
                    _as_tuple(state.best["score"]))
                if improved:
                    state.best = {"score": score, "epoch": state.epoch, "bad_epochs": 0}
                else:
                    state.best["bad_epochs"] += 1
                    patience = self.cfg.patience
                    state.stopped_early = patience is not None and state.best["bad_epochs"] >= patience
                self.save(improved)
                if on_epoch_end is not None:
                    on_epoch_end(state)


def _as_tuple(score: Any) -> tuple:
    return tuple(score) if isinstance(score, (list, tuple)) else (score,)


def fit(task: Task, config: FitConfig, out: Path | str | None = None, *, resume: bool = False,
        ctx: _dist.DistContext | None = None, device: str | torch.device = "cpu", progress: bool = False,
        on_epoch_end: Callable[[FitState], None] | None = None) -> FitState:
    """Train ``task`` for ``config.epochs`` epochs (continuing ``out``'s checkpoint with ``resume``).

    With ``out``, the checkpoint (and ``best``, and the history CSV) is written there after every epoch.
    ``ctx`` is the torchrun context (:func:`~transferlab.training.distributed.init_distributed`); without
    it training runs in one process on ``device``. Returns the final :class:`FitState`.
    """
    config = config.resolved()
    out = Path(out) if out is not None else None
    check_run_folder(out, config.checkpoint, resume, config.what)
    if ctx is None:
        from .._utils import resolve_device

        ctx = _dist.DistContext(device=resolve_device(str(device)) if not isinstance(device, torch.device)
                                else device)
    cuda = [ctx.device.index or 0] if ctx.device.type == "cuda" else []
    with seeded(config.seed, cuda):
        engine = _Engine(task, config, out, ctx)
        if resume:
            engine.resume()
        engine.run(progress, on_epoch_end)
    return engine.state
