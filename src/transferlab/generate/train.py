"""One training loop for the DCGAN and the conditional GAN (report 000 section 2; report 001 chapter 4).

Alternates ``d_steps`` discriminator updates (eq. 7) and one generator update (eq. 6, or the original
minimax eq. 6') per batch, with Adam(lr, betas=(beta1, 0.999)) for both networks. Every epoch writes
a grid of the fixed evaluation noise (``samples/epoch_NNN.png``), the G/D losses and mean D outputs
(``history.csv``, ``curves.png``) and a checkpoint (``checkpoint.pt``); the end of training writes the
animated ``samples.gif`` and the generator's model folder ``model/``.

Determinism and resumption: the shuffling and the noise of epoch ``e`` come from generators seeded
with ``(seed, e)``, and the checkpoint holds both networks, both optimisers and the history, so
``--resume`` continues exactly where an interrupted run stopped (tested: equal weights).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from .._utils import resolve_device, seed_everything
from ..errors import ConfigError, TrainingError
from ..runs import write_config
from ..training import History, capture_rng_state, check_finite, load_checkpoint, restore_rng_state, save_checkpoint
from .datasets import GanData
from .dcgan import INITS
from .grids import save_gif, save_grid
from .losses import check_loss, discriminator_loss, generator_loss
from .models import MODELS, build_pair, generate, save_generator

CHECKPOINT = "checkpoint.pt"
# Options that change the networks or what an epoch computes: a resumed run must keep them.
_FIXED_ON_RESUME = ("model", "nz", "ngf", "ndf", "channels", "classes", "lr_g", "lr_d", "beta1", "batch_size",
                    "g_loss", "init", "d_steps", "seed", "max_batches", "data")


@dataclass
class GanConfig:
    """Hyper-parameters (defaults: the seeds' DCGAN settings, report 001 section 4.5.1)."""

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

    def validate(self) -> "GanConfig":
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


def train_gan(data: GanData, config: GanConfig, out: Path | str, *, resume: bool = False,
              log: Callable[[str], None] = lambda _: None) -> GanRun:
    """Train a DCGAN or conditional GAN on ``data``; write the run folder ``out`` (see module docstring)."""
    config.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    classes = len(data.classes)
    device = resolve_device(config.device)
    resolved = {**asdict(config), "channels": data.channels, "classes": classes, "data": data.describe()}
    ckpt_path = out / CHECKPOINT

    seed_everything(config.seed)
    g, d = build_pair(config.model, nz=config.nz, ngf=config.ngf, ndf=config.ndf, channels=data.channels,
                      classes=classes, init=config.init, seed=config.seed)
    g, d = g.to(device), d.to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=config.lr_g, betas=(config.beta1, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=config.lr_d, betas=(config.beta1, 0.999))
    history = History()
    start = 1
    if resume:
        state = load_checkpoint(ckpt_path, map_location=device)
        saved = state["config"]
        changed = [k for k in _FIXED_ON_RESUME if saved.get(k) != resolved.get(k)]
        if changed:
            raise TrainingError(f"cannot resume {out}: {', '.join(f'{k} was {saved.get(k)!r}, now {resolved.get(k)!r}' for k in changed)}; "
                                "use the same options or start a new run without --resume")
        g.load_state_dict(state["generator"])
        d.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        restore_rng_state(state["rng"])
        history = History(state["history"])
        start = int(state["epoch"]) + 1
        log(f"resuming {out} after epoch {state['epoch']}")
    elif ckpt_path.exists():
        raise TrainingError(f"{out} already holds a GAN checkpoint; pass --resume to continue it or choose "
                            "another --out")
    write_config(out, {"command": "gan train", **resolved})

    eval_z, eval_labels = eval_inputs(config, config.nz, classes)
    loader_kwargs = dict(batch_size=config.batch_size, shuffle=True, drop_last=len(data) >= config.batch_size,
                         num_workers=config.workers)
    for epoch in range(start, config.epochs + 1):
        rng = _epoch_generator(config.seed, epoch)
        loader = DataLoader(data.dataset, generator=rng, **loader_kwargs)
        sums = {"loss_d": 0.0, "loss_g": 0.0, "d_real": 0.0, "d_fake": 0.0}
        steps, tic = 0, time.perf_counter()
        g.train(), d.train()
        for step, (x, y) in enumerate(loader, start=1):
            if config.max_batches is not None and step > config.max_batches:
                break
            x, y = x.to(device), y.to(device).long()
            cond = (y,) if config.model == "conditional" else ()
            for _ in range(config.d_steps):
                z = torch.randn(x.shape[0], config.nz, generator=rng).to(device)
                with torch.no_grad():
                    fake = g(z, *cond)
                real_logits, fake_logits = d.logits(x, *cond), d.logits(fake, *cond)
                loss_d = discriminator_loss(real_logits, fake_logits)
                check_finite(loss_d, what="discriminator loss", epoch=epoch, step=step,
                             checkpoint=ckpt_path if ckpt_path.exists() else None)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
            z = torch.randn(x.shape[0], config.nz, generator=rng).to(device)
            loss_g = generator_loss(d.logits(g(z, *cond), *cond), config.g_loss)
            check_finite(loss_g, what="generator loss", epoch=epoch, step=step,
                         checkpoint=ckpt_path if ckpt_path.exists() else None)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            sums["loss_d"] += float(loss_d.detach())
            sums["loss_g"] += float(loss_g.detach())
            sums["d_real"] += float(torch.sigmoid(real_logits.detach()).mean())
            sums["d_fake"] += float(torch.sigmoid(fake_logits.detach()).mean())
            steps += 1
        if steps == 0:
            raise TrainingError("the dataset gave no batch; use a smaller --batch-size or more images")
        row = {"epoch": epoch, **{k: v / steps for k, v in sums.items()}, "steps": steps,
               "seconds": round(time.perf_counter() - tic, 3)}
        history.append(**row)
        save_grid(generate(g, eval_z, eval_labels), out / "samples" / f"epoch_{epoch:03d}.png",
                  columns=config.grid_columns)
        history.to_csv(out / "history.csv")
        history.plot(out / "curves.png", {"loss": ["loss_d", "loss_g"], "D output": ["d_real", "d_fake"]},
                     title=f"{config.model} on {data.name}")
        save_checkpoint(ckpt_path, generator=g.state_dict(), discriminator=d.state_dict(),
                        opt_g=opt_g.state_dict(), opt_d=opt_d.state_dict(), epoch=epoch, history=history.rows,
                        rng=capture_rng_state(), config=resolved)
        log(f"epoch {epoch}/{config.epochs}: loss_d {row['loss_d']:.3f} loss_g {row['loss_g']:.3f} "
            f"D(x) {row['d_real']:.2f} D(G(z)) {row['d_fake']:.2f} ({row['seconds']:.1f} s)")

    frames = sorted((out / "samples").glob("epoch_*.png"))
    files = {"checkpoint": ckpt_path, "history": out / "history.csv", "curves": out / "curves.png"}
    gif = save_gif(frames, out / "samples.gif")
    if gif is not None:
        files["gif"] = gif
    if frames:
        files["last_grid"] = frames[-1]
    files["model"] = save_generator(out / "model", g.cpu(), {"data": data.describe(), "epochs": len(history.rows),
                                                             "g_loss": config.g_loss, "init": config.init,
                                                             "classes": data.classes})
    g.to(device)
    return GanRun(out, g, d, history.rows, resolved, files)
