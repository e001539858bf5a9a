"""Training of the DCGAN (Radford et al. 2016) and the conditional GAN (Mirza & Osindero 2014) as one task.

Report 000 section 2; report 001 chapter 4. :class:`GanTask` alternates ``d_steps`` discriminator
updates (eq. 7) and one generator update (eq. 6, or the original minimax eq. 6') per batch, with
Adam(lr, betas=(beta1, 0.999)) for both networks; :func:`transferlab.training.fit` runs it (NaN guard,
checkpoint, exact resume, history). Every epoch writes a grid of the fixed evaluation noise
(``samples/epoch_NNN.png``), the G/D losses and mean D outputs (``history.csv``, ``curves.png``) and the
checkpoint (``checkpoint.pt``); the end writes the animated ``samples.gif``, the generator's model folder
``model/`` and, when images were skipped (unreadable files), ``skipped.json``.

Determinism and resumption: the shuffling and the noise of epoch ``e`` come from generators seeded
with ``(seed, e)``, and the checkpoint holds both networks, both optimisers and the history, so
``--resume`` continues exactly where an interrupted run stopped (tested: equal weights).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from .._utils import resolve_device, write_json
from ..data import collate_skipping
from ..data.sources import as_items, describe_item
from ..errors import ConfigError, TrainingError, check_finite_fields
from ..runs import write_config
from ..training import FitConfig, FitState, Task, check_run_folder, fit
from .datasets import GanData
from .dcgan import INITS
from .grids import save_gif, save_grid
from .losses import check_loss, discriminator_loss, generator_loss
from .models import MODELS, build_pair, generate, save_generator

CHECKPOINT = "checkpoint.pt"
TRAIN_ONLY = (None, "g", "d")
# Options that change the networks or what an epoch computes: a resumed run must keep them.
_FIXED_ON_RESUME = ("model", "nz", "ngf", "ndf", "channels", "classes", "lr_g", "lr_d", "beta1", "batch_size",
                    "g_loss", "init", "d_steps", "seed", "max_batches", "data")


@dataclass(frozen=True)
class GanConfig:
    """Hyper-parameters (defaults: the seeds' DCGAN settings, report 001 section 4.5.1).

    Frozen, like every training configuration; :meth:`resolved` returns it validated.
    """

    model: str = "dcgan"
    nz: int = 100
    ngf: int = 32
    ndf: int = 32
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    batch_size: int = 128
    epochs: int = 5
    g_loss: str = "non_saturating"
    init: str = "dcgan"
    d_steps: int = 1
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    max_batches: int | None = None
    n_eval: int = 64
    grid_columns: int = 8
    train_only: str | None = None  # "g" or "d": update only that network (report 001 section 4.4.1, GAN Q1)
    d_ignores_labels: bool = False  # conditional GAN with cD(x) instead of cD(x, y) (report 002, question 7)

    def resolved(self) -> "GanConfig":
        """This configuration, validated (a :class:`ConfigError` names the first bad option)."""
        check_finite_fields(self)
        if self.model not in MODELS:
            raise ConfigError(f"unknown GAN model {self.model!r}; expected one of {', '.join(MODELS)}")
        if self.init not in INITS:
            raise ConfigError(f"unknown initialisation {self.init!r}; expected one of {', '.join(INITS)}")
        check_loss(self.g_loss)
        for name in ("nz", "ngf", "ndf", "batch_size", "epochs", "d_steps", "n_eval", "grid_columns"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1; got {getattr(self, name)}")
        for name in ("lr_g", "lr_d"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive; got {getattr(self, name)}")
        if not 0.0 <= self.beta1 < 1.0:
            raise ConfigError(f"--beta1 must be in [0, 1); got {self.beta1}")
        if self.train_only not in TRAIN_ONLY:
            raise ConfigError(f"--train-only takes g (only the generator's equation 6) or d (only the "
                              f"discriminator's equation 7); got {self.train_only!r}")
        if self.d_ignores_labels and self.model != "conditional":
            raise ConfigError("--d-ignores-y is an ablation of the conditional GAN; got --model "
                              f"{self.model}; add --model conditional")
        if self.max_batches is not None and self.max_batches < 1:
            raise ConfigError(f"--max-batches must be at least 1; got {self.max_batches}")
        return self


@dataclass
class GanRun:
    """What :func:`train_gan` leaves behind (all also on disk under ``out``)."""

    out: Path
    generator: nn.Module
    discriminator: nn.Module
    history: list[dict[str, Any]]
    config: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # {path: reason}: unreadable files, not trained on
    metrics: dict[str, Any] | None = None  # the judge's scores (``gan train`` with metrics), else None


def eval_inputs(config: GanConfig, nz: int, classes: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fixed evaluation noise (and labels): one row per class x ``grid_columns`` for conditional models.

    In the conditional grid, column ``j`` uses the same noise vector for every class (seed question 9).
    """
    g = torch.Generator().manual_seed(config.seed + 7919)
    if config.model == "conditional":
        z = torch.randn(config.grid_columns, nz, generator=g).repeat(classes, 1)
        labels = torch.arange(classes).repeat_interleave(config.grid_columns)
        return z, labels
    return torch.randn(config.n_eval, nz, generator=g), None


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class GanTask(Task):
    """One GAN training (see the module docstring) as a task on :func:`~transferlab.training.fit`."""

    def __init__(self, data: GanData, config: GanConfig, out: Path, device: torch.device) -> None:
        self.data, self.config, self.out = data, config, out
        self.classes = len(data.classes)
        self.resolved = {**asdict(config), "channels": data.channels, "classes": self.classes,
                         "data": data.describe()}
        self.g, self.d = build_pair(config.model, nz=config.nz, ngf=config.ngf, ndf=config.ndf,
                                    channels=data.channels, classes=self.classes, init=config.init, seed=config.seed,
                                    d_ignores_labels=config.d_ignores_labels)
        # --train-only: the other network keeps its initial weights (it still runs in training mode)
        frozen = {"g": self.d, "d": self.g}.get(config.train_only)
        if frozen is not None:
            frozen.requires_grad_(False)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=config.lr_g, betas=(config.beta1, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=config.lr_d, betas=(config.beta1, 0.999))
        self.items = as_items(data.dataset)
        self.failures: dict[str, str] = {}
        self.eval_z, self.eval_labels = eval_inputs(config, config.nz, self.classes)
        self.device = device

    def modules(self):
        return {"generator": self.g, "discriminator": self.d}

    def optimizers(self):
        return {"g": self.opt_g, "d": self.opt_d}

    def fingerprint(self) -> dict[str, Any]:
        keys = _FIXED_ON_RESUME + tuple(k for k in ("train_only", "d_ignores_labels") if self.resolved.get(k))
        return {k: self.resolved.get(k) for k in keys}  # only --epochs (and device...) may change

    def start_epoch(self, epoch: int):
        cfg = self.config
        self.rng = _epoch_generator(cfg.seed, epoch + 1)
        loader = DataLoader(self.items, generator=self.rng, batch_size=cfg.batch_size, shuffle=True,
                            drop_last=len(self.data) >= cfg.batch_size, num_workers=cfg.workers,
                            collate_fn=collate_skipping)
        self.g.train(), self.d.train()
        for step, (x, y, _, failed) in enumerate(loader, start=1):
            for index, reason in failed:  # an unreadable image is skipped and reported, never fatal
                self.failures[describe_item(self.items, index)] = reason
            if cfg.max_batches is not None and step > cfg.max_batches:
                break
            yield None if x is None else (x, y)

    def train_step(self, batch, step) -> dict[str, float]:
        cfg, g, d = self.config, self.g, self.d
        x, y = batch[0].to(step.device), batch[1].to(step.device).long()
        cond = (y,) if cfg.model == "conditional" else ()
        for _ in range(cfg.d_steps):
            z = torch.randn(x.shape[0], cfg.nz, generator=self.rng).to(step.device)
            with torch.no_grad():
                fake = g(z, *cond)
            with torch.set_grad_enabled(cfg.train_only != "g"):
                real_logits, fake_logits = d.logits(x, *cond), d.logits(fake, *cond)
                loss_d = discriminator_loss(real_logits, fake_logits)
            if cfg.train_only != "g":  # equation 7
                step.update(loss_d, "d", what="discriminator loss")
        z = torch.randn(x.shape[0], cfg.nz, generator=self.rng).to(step.device)
        with torch.set_grad_enabled(cfg.train_only != "d"):
            loss_g = generator_loss(d.logits(g(z, *cond), *cond), cfg.g_loss)
        if cfg.train_only != "d":  # equation 6
            step.update(loss_g, "g", what="generator loss")
        return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()),
                "d_real": float(torch.sigmoid(real_logits.detach()).mean()),
                "d_fake": float(torch.sigmoid(fake_logits.detach()).mean())}

    def end_epoch(self, epoch: int, train: dict[str, Any]) -> dict[str, Any]:
        if train["steps"] == 0:
            raise TrainingError("the dataset gave no batch; use a smaller --batch-size or more images")
        save_grid(generate(self.g, self.eval_z, self.eval_labels), self.out / "samples" / f"epoch_{epoch + 1:03d}.png",
                  columns=self.config.grid_columns)
        return {**{k: train[k] for k in ("loss_d", "loss_g", "d_real", "d_fake")}, "steps": train["steps"],
                "seconds": round(train["seconds"], 3)}

    def state_dict(self) -> dict[str, Any]:
        return {"failures": dict(self.failures)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.failures.update(state.get("failures", {}))


def train_gan(data: GanData, config: GanConfig, out: Path | str, *, resume: bool = False,
              log: Callable[[str], None] = lambda _: None,
              record: Callable[..., None] | None = None) -> GanRun:
    """Train a DCGAN or conditional GAN on ``data``; write the run folder ``out`` (see module docstring).

    ``record`` receives the resolved configuration (``Run.record`` inside a :class:`~transferlab.runs.Run`);
    without it the configuration is written as ``out/config.json`` (a study's variant folders).
    """
    config = config.resolved()
    out = Path(out)
    check_run_folder(out, CHECKPOINT, resume, "a GAN run")
    device = resolve_device(config.device)
    task = GanTask(data, config, out, device)
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    if resume:
        log(f"resuming {out} from its checkpoint")
    if record is not None:
        record(**task.resolved, resolved_device=str(device))
    else:
        write_config(out, {"command": "gan train", **task.resolved, "resolved_device": str(device)})

    def after_epoch(state: FitState) -> None:
        row = state.row
        state.history.plot(out / "curves.png", {"loss": ["loss_d", "loss_g"], "D output": ["d_real", "d_fake"]},
                           title=f"{config.model} on {data.name}")
        log(f"epoch {state.epoch}/{config.epochs}: loss_d {row['loss_d']:.3f} loss_g {row['loss_g']:.3f} "
            f"D(x) {row['d_real']:.2f} D(G(z)) {row['d_fake']:.2f} ({row['seconds']:.1f} s)")

    state = fit(task, FitConfig(epochs=config.epochs, seed=config.seed, checkpoint=CHECKPOINT, what="a GAN run"),
                out, resume=resume, device=device, on_epoch_end=after_epoch)
    g, d, history = task.g, task.d, state.history
    frames = sorted((out / "samples").glob("epoch_*.png"))
    files = {"checkpoint": out / CHECKPOINT, "history": out / "history.csv", "curves": out / "curves.png"}
    gif = save_gif(frames, out / "samples.gif")
    if gif is not None:
        files["gif"] = gif
    if frames:
        files["last_grid"] = frames[-1]
    files["model"] = save_generator(out / "model", g.cpu(), {"data": data.describe(), "epochs": len(history.rows),
                                                             "g_loss": config.g_loss, "init": config.init,
                                                             "classes": data.classes})
    g.to(device)
    skipped = {**dict(data.skipped), **task.failures}  # rejected by the folder scan + failed to decode
    if skipped:
        write_json(out / "skipped.json", skipped)
        files["skipped"] = out / "skipped.json"
        log(f"{len(skipped)} unreadable file(s) skipped: listed in {out / 'skipped.json'}")
    return GanRun(out, g, d, history.rows, task.resolved, files, skipped)
