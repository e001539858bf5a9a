"""``transferlab study gan``: the seeds' GAN ablations as one table and figures.

Report 001 sections 4.5.2-4.5.5 and report 002 question 5 vary, one at a time from the DCGAN
defaults: the weight initialisation (N(0, 0.02) vs PyTorch's default), the generator loss
(non-saturating vs the original minimax), the latent size nz in {2, 10, 100, 1000} and the balance
between generator and discriminator widths (ngf/ndf = 256/8 and 8/256); report 001 section 4.6 adds
the conditional GAN. ``one_sided`` trains only G or only D (report 001 section 4.4.1, the GAN practical's
Q1: only equation 6 or only equation 7) and ``blind_d`` the conditional GAN whose discriminator ignores y
(report 002, question 7). Each variant is a normal ``gan train`` run (its own sub-folder with grids, GIF,
curves, checkpoint) scored by one judge trained once on the real data (see :mod:`.metrics`), and
the saturation table measures the generator's gradient under both losses (see :mod:`.saturation`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..errors import ConfigError
from ..report import save_figure, write_table
from ..runs import write_config
from .datasets import GanData
from .metrics import score_generator, train_judge
from .models import build_pair
from .saturation import generator_gradients
from .train import GanConfig, train_gan

GROUPS = ("baseline", "init", "loss", "nz", "imbalance", "conditional", "one_sided", "blind_d")


@dataclass
class GanStudy:
    rows: list[dict[str, Any]]
    saturation: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)


def study_variants(groups: Sequence[str] = GROUPS, nz_values: Sequence[int] = (2, 10, 1000),
                   imbalance: Sequence[tuple[int, int]] = ((256, 8), (8, 256)), base_nz: int = 100
                   ) -> list[tuple[str, dict[str, Any]]]:
    """``[(name, overrides of GanConfig)]`` for the requested groups (the baseline, with ``base_nz``, first)."""
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ConfigError(f"unknown study group(s) {', '.join(unknown)}; expected some of {', '.join(GROUPS)}")
    variants: list[tuple[str, dict[str, Any]]] = [("baseline", {})]
    if "init" in groups:
        variants.append(("init=default", {"init": "default"}))
    if "loss" in groups:
        variants.append(("loss=minimax", {"g_loss": "minimax"}))
    if "nz" in groups:
        variants += [(f"nz={nz}", {"nz": int(nz)}) for nz in nz_values if int(nz) != base_nz]
    if "imbalance" in groups:
        variants += [(f"ngf={g},ndf={d}", {"ngf": int(g), "ndf": int(d)}) for g, d in imbalance]
    if "conditional" in groups:
        variants.append(("conditional", {"model": "conditional"}))
    if "one_sided" in groups:
        variants += [("train only G", {"train_only": "g"}), ("train only D", {"train_only": "d"})]
    if "blind_d" in groups:
        variants.append(("conditional, D ignores y", {"model": "conditional", "d_ignores_labels": True}))
    return variants


def _saturation_table(data: GanData, base: GanConfig, d_updates: Sequence[int]) -> list[dict[str, Any]]:
    g, d = build_pair("dcgan", nz=base.nz, ngf=base.ngf, ndf=base.ndf, channels=data.channels,
                      classes=len(data.classes), init=base.init, seed=base.seed)
    gen = torch.Generator().manual_seed(base.seed)
    idx = torch.randperm(len(data), generator=gen)[:min(base.batch_size, len(data))].tolist()
    real = torch.stack([x for x in (data.dataset[i][0] for i in idx) if x is not None])  # unreadable: skipped
    return [generator_gradients(g, d, real, d_updates=k, lr=base.lr_d, beta1=base.beta1, seed=base.seed)
            for k in d_updates]


def _figure(rows: list[dict[str, Any]], grids: dict[str, Path], histories: dict[str, list[dict]], out: Path) -> tuple[Path, Path]:
    import matplotlib.pyplot as plt
    from PIL import Image

    n = len(grids)
    cols = min(4, n)
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(3.2 * cols, 3.6 * -(-n // cols)), squeeze=False)
    by_name = {r["variant"]: r for r in rows}
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, path) in zip(axes.flat, grids.items()):
        ax.imshow(Image.open(path), cmap="gray")
        r = by_name[name]
        extra = f"\nrecognised {r['class_recognition']:.2f}" if r.get("class_recognition") is not None else ""
        fd = r.get("frechet_judge")
        ax.set_title(f"{name}\nFréchet {fd:.0f}" if fd is not None else name, fontsize=9)
        if extra:
            ax.set_title(ax.get_title() + extra, fontsize=9)
    samples = save_figure(fig, out / "gan_study.png")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, hist in histories.items():
        epochs = [h["epoch"] for h in hist]
        axes[0].plot(epochs, [h["loss_g"] for h in hist], marker="o", ms=3, label=name)
        axes[1].plot(epochs, [h["loss_d"] for h in hist], marker="o", ms=3, label=name)
    for ax, title in zip(axes, ("generator loss", "discriminator loss")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    curves = save_figure(fig, out / "gan_study_losses.png")
    return samples, curves


def run_gan_study(data: GanData, out: Path | str, base: GanConfig | None = None, *,
                  groups: Sequence[str] = GROUPS, nz_values: Sequence[int] = (2, 10, 1000),
                  imbalance: Sequence[tuple[int, int]] = ((256, 8), (8, 256)), judge_epochs: int = 4,
                  n_samples: int = 1000, d_updates: Sequence[int] = (0, 10, 50),
                  log: Callable[[str], None] = lambda _: None,
                  record: Callable[..., None] | None = None) -> GanStudy:
    """Train every variant on ``data``, score each with one judge and write the tables and figures.

    ``record`` receives the resolved study configuration (``Run.record``); without it it is written as
    ``out/config.json``.
    """
    base = (base or GanConfig()).resolved()
    out = Path(out)
    variants = study_variants(groups, nz_values, imbalance, base_nz=base.nz)
    if len(data.classes) < 2 and any(o.get("model") == "conditional" for _, o in variants):
        raise ConfigError(f"{data.name} has one class: drop 'conditional' from --groups or use labelled data")
    resolved = {"data": data.describe(), "base": dataclasses.asdict(base), "variants": dict(variants),
                "judge_epochs": judge_epochs, "n_samples": n_samples}
    if record is not None:
        record(**resolved)
    else:
        write_config(out, {"command": "study gan", **resolved})
    judge = train_judge(data, seed=base.seed, epochs=judge_epochs) if len(data.classes) >= 2 else None
    if judge is not None:
        log(f"judge trained on real {data.name}: held-out accuracy {judge.test_accuracy:.3f}")
    rows, grids, histories = [], {}, {}
    for name, overrides in variants:
        config = dataclasses.replace(base, **overrides)
        folder = out / "variants" / name.replace("=", "_").replace(",", "_").replace(" ", "_")
        log(f"variant {name}")
        run = train_gan(data, config, folder, resume=(folder / "checkpoint.pt").exists(), log=log)
        metrics = score_generator(run.generator, data, judge=judge, n=n_samples, seed=base.seed)
        last = run.history[-1]
        rows.append({"variant": name, "model": config.model, "nz": config.nz, "ngf": config.ngf, "ndf": config.ndf,
                     "init": config.init, "g_loss": config.g_loss, "train_only": config.train_only,
                     "d_ignores_y": config.d_ignores_labels, "epochs": len(run.history),
                     "loss_d": last["loss_d"], "loss_g": last["loss_g"], "d_real": last["d_real"],
                     "d_fake": last["d_fake"], "class_entropy": metrics.get("class_entropy"),
                     "max_class_share": metrics.get("max_class_share"),
                     "classes_covered": metrics.get("classes_covered"),
                     "diversity_ratio": metrics.get("diversity_ratio"),
                     "frechet_judge": metrics.get("frechet_judge"),
                     "class_recognition": metrics.get("class_recognition"),
                     "seconds": round(sum(h["seconds"] for h in run.history), 1)})
        grids[name] = run.files["last_grid"]
        histories[name] = run.history
    files = dict(zip(("table_csv", "table_md"), write_table(rows, out, "gan_study")))
    saturation = _saturation_table(data, base, d_updates)
    files.update(zip(("saturation_csv", "saturation_md"), write_table(saturation, out, "gan_saturation")))
    files["figure"], files["losses"] = _figure(rows, grids, histories, out)
    if judge is not None:
        files["judge"] = out / "judge.json"
        from .._utils import write_json

        write_json(files["judge"], {"test_accuracy": judge.test_accuracy, "classes": judge.classes})
    return GanStudy(rows, saturation, files)
