"""``transferlab gan train|sample|interpolate`` and ``transferlab study gan`` (thin: options -> library -> summary)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import options as opt

console = Console()
gan_app = typer.Typer(no_args_is_help=True, help="DCGAN and conditional GAN (the seeds' architecture): train, "
                                                 "sample, interpolate.")

Data = Annotated[str, typer.Option("--data", "-d", help="digits (offline default: sklearn digits at 32x32), mnist, "
                                                        "cifar10, celeba, or an image folder (class sub-folders "
                                                        "give labels).")]
Model = Annotated[str, typer.Option("--model", "-m", help="dcgan | conditional")]
Epochs = Annotated[int, typer.Option("--epochs", min=1, help="Training epochs (total, also when resuming).")]
Nz = Annotated[int, typer.Option("--nz", min=1, help="Latent size (report: 100; also 1000).")]
Ngf = Annotated[int, typer.Option("--ngf", min=1, help="Generator base width.")]
Ndf = Annotated[int, typer.Option("--ndf", min=1, help="Discriminator base width.")]
LrG = Annotated[float, typer.Option("--lr-g", help="Generator Adam learning rate.")]
LrD = Annotated[float, typer.Option("--lr-d", help="Discriminator Adam learning rate.")]
Beta1 = Annotated[float, typer.Option("--beta1", help="Adam beta1 of both optimisers.")]
GLoss = Annotated[str, typer.Option("--g-loss", help="non_saturating (max log D(G(z))) | minimax (min log(1 - "
                                                     "D(G(z))), the original).")]
Init = Annotated[str, typer.Option("--init", help="dcgan (N(0, 0.02)) | default (PyTorch's).")]
DSteps = Annotated[int, typer.Option("--d-steps", min=1, help="Discriminator updates per generator update.")]
TrainOnly = Annotated[Optional[str], typer.Option("--train-only", help="g: update only the generator (equation 6; "
                                                                     "D keeps its initial weights) | d: only the "
                                                                     "discriminator (equation 7). GAN Q1.")]
DIgnoresY = Annotated[bool, typer.Option("--d-ignores-y", help="Conditional GAN with cD(x) instead of cD(x, y): the "
                                                               "discriminator's label input is zeroed (report 002 "
                                                               "Q7).")]
Channels = Annotated[Optional[int], typer.Option("--channels", help="1 or 3 (default: the dataset's own).")]
Attribute = Annotated[Optional[str], typer.Option("--attribute", help="CelebA: the binary attribute to condition "
                                                                      "on (name, e.g. smiling, or index 0-39).")]
DataRoot = Annotated[Optional[Path], typer.Option("--data-root", help="Folder of torchvision datasets "
                                                                      "(default: the user cache directory).")]
Download = Annotated[bool, typer.Option("--download/--no-download", help="Let torchvision download "
                                                                         "mnist/cifar10/celeba (needs network).")]
MaxImages = Annotated[Optional[int], typer.Option("--max-images", min=1, help="Train on a seeded random subset.")]
MaxBatches = Annotated[Optional[int], typer.Option("--max-batches", min=1, help="Stop each epoch after this many "
                                                                                "batches (tiny budgets).")]
Metrics = Annotated[bool, typer.Option("--metrics/--no-metrics", help="Score the generator with a classifier "
                                                                      "trained on the real data (metrics.json).")]
Fid = Annotated[bool, typer.Option("--fid", help="Also compute FID with Inception features (needs "
                                                 "torchmetrics[image] and its weights).")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")]
Run = Annotated[Path, typer.Argument(help="A `gan train` run folder (or its model/ folder).")]


@gan_app.command("train")
def train(
    data: Data = "digits",
    model: Model = "dcgan",
    epochs: Epochs = 5,
    nz: Nz = 100,
    ngf: Ngf = 32,
    ndf: Ndf = 32,
    lr_g: LrG = 2e-4,
    lr_d: LrD = 2e-4,
    beta1: Beta1 = 0.5,
    batch_size: opt.BatchSize = 128,
    g_loss: GLoss = "non_saturating",
    init: Init = "dcgan",
    d_steps: DSteps = 1,
    train_only: TrainOnly = None,
    d_ignores_y: DIgnoresY = False,
    channels: Channels = None,
    attribute: Attribute = None,
    data_root: DataRoot = None,
    download: Download = False,
    max_images: MaxImages = None,
    max_batches: MaxBatches = None,
    metrics: Metrics = True,
    fid: Fid = False,
    workers: Annotated[int, typer.Option("--workers", min=0, help="DataLoader worker processes.")] = 0,
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
    out: opt.Out = None,
    resume: Resume = False,
) -> None:
    """Train a DCGAN or conditional GAN: per-epoch grids + GIF, loss CSV + curves, checkpoints, metrics."""
    from ..generate import GanConfig
    from ..generate.run import gan_train

    config = GanConfig(model=model, nz=nz, ngf=ngf, ndf=ndf, lr_g=lr_g, lr_d=lr_d, beta1=beta1,
                       batch_size=batch_size, epochs=epochs, g_loss=g_loss, init=init, d_steps=d_steps, seed=seed,
                       device=device, workers=workers, max_batches=max_batches,
                       train_only=train_only.lower() if train_only else None, d_ignores_labels=d_ignores_y)
    run = gan_train(data, config, channels=channels, attribute=attribute, data_root=data_root, download=download,
                    max_images=max_images, metrics=metrics, fid=fid, out=out, resume=resume,
                    on_message=console.print)
    if run.metrics is not None:
        _print_metrics(run.metrics)
    console.print(f"-> {run.out} (grids in samples/, {run.files.get('gif', 'no gif')}, curves.png, model/)")


def _print_metrics(scores: dict) -> None:
    if "class_recognition" in scores:
        console.print(f"[bold]class recognition {scores['class_recognition']:.3f}[/] (chance {scores['chance']:.3f}; "
                      f"judge accuracy on real images {scores['judge_test_accuracy']:.3f})")
    if "class_entropy" in scores:
        console.print(f"predicted-class entropy {scores['class_entropy']:.3f} (1 = uniform), largest class share "
                      f"{scores['max_class_share']:.3f}, diversity ratio {scores['diversity_ratio']:.3f}, "
                      f"Fréchet distance (judge features) {scores['frechet_judge']:.2f}")
    for key in ("note", "fid_note"):
        if key in scores:
            console.print(scores[key], markup=False)
    if scores.get("fid_inception") is not None:
        console.print(f"FID (Inception) {scores['fid_inception']:.2f}")


@gan_app.command("sample")
def sample(
    run: Run,
    n: Annotated[int, typer.Option("--n", min=1, help="Unconditional: number of samples.")] = 64,
    per_class: Annotated[int, typer.Option("--per-class", min=1, help="Conditional: samples (columns) per class; "
                                                                      "column j shares its noise.")] = 8,
    columns: Annotated[int, typer.Option("--columns", min=1, help="Unconditional: grid columns.")] = 8,
    images: Annotated[bool, typer.Option("--images", help="Also write each sample as a PNG (images/<class>/).")] = False,
    seed: opt.Seed = 0,
    out: opt.Out = None,
) -> None:
    """Draw samples from a trained generator: a grid (conditional: one row per class) and optional PNGs."""
    from ..generate.run import gan_sample

    result = gan_sample(run, n=n, per_class=per_class, columns=columns, images=images, seed=seed, out=out)
    console.print(f"{result['count']} samples -> {result['grid']}")


@gan_app.command("interpolate")
def interpolate(
    run: Run,
    pairs: Annotated[int, typer.Option("--pairs", min=1, help="Number of (z1, z2) strips (rows).")] = 4,
    steps: Annotated[int, typer.Option("--steps", min=2, help="Images per strip (alpha from 0 to 1).")] = 10,
    label: Annotated[Optional[list[int]], typer.Option("--label", help="Conditional: class index of each strip "
                                                                       "(repeat; default: 0, 1, 2...).")] = None,
    seed: opt.Seed = 0,
    out: opt.Out = None,
) -> None:
    """Latent interpolation strips alpha*z1 + (1-alpha)*z2 (report 001 section 4.5.6)."""
    from ..generate.run import gan_interpolate

    result = gan_interpolate(run, pairs=pairs, steps=steps, labels=label, seed=seed, out=out)
    console.print(f"{pairs} strips x {steps} steps -> {result['path']}")


def study_gan(
    data: Data = "digits",
    epochs: Epochs = 5,
    batch_size: opt.BatchSize = 128,
    groups: Annotated[str, typer.Option("--groups", help="Comma-separated: baseline,init,loss,nz,imbalance,"
                                                         "conditional, and one_sided (only G / only D, GAN Q1), "
                                                         "blind_d (conditional, D ignores y, report 002 Q7).")] = "baseline,init,loss,nz,imbalance,conditional",
    nz_values: Annotated[str, typer.Option("--nz-values", help="Latent sizes to compare with the baseline's --nz.")] = "2,10,1000",
    imbalance: Annotated[str, typer.Option("--imbalance", help="ngf:ndf pairs (the report: 256:8,8:256).")] = "256:8,8:256",
    nz: Nz = 100,
    ngf: Ngf = 32,
    ndf: Ndf = 32,
    channels: Channels = None,
    attribute: Attribute = None,
    data_root: DataRoot = None,
    download: Download = False,
    max_images: MaxImages = None,
    max_batches: MaxBatches = None,
    judge_epochs: Annotated[int, typer.Option("--judge-epochs", min=1, help="Epochs of the real-data classifier.")] = 4,
    samples: Annotated[int, typer.Option("--samples", min=10, help="Generated samples scored per variant.")] = 1000,
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
    out: opt.Out = None,
) -> None:
    """The seeds' GAN ablations (init, loss, nz, ngf/ndf balance, conditional) as a table + figures."""
    from ..errors import ConfigError
    from ..generate import GanConfig
    from ..generate.run import gan_study
    from ..report.tables import markdown_table

    try:
        nzs = [int(v) for v in nz_values.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"--nz-values takes integers like 2,10,1000; got {nz_values!r}") from exc
    try:
        pairs = [tuple(int(p) for p in item.split(":")) for item in imbalance.split(",") if item.strip()]
    except ValueError as exc:
        raise ConfigError(f"--imbalance takes ngf:ndf pairs like 256:8,8:256; got {imbalance!r}") from exc
    if any(len(p) != 2 for p in pairs):
        raise ConfigError(f"--imbalance takes ngf:ndf pairs like 256:8,8:256; got {imbalance!r}")
    base = GanConfig(nz=nz, ngf=ngf, ndf=ndf, batch_size=batch_size, epochs=epochs, seed=seed, device=device,
                     max_batches=max_batches)
    result = gan_study(data, base, groups=[g.strip() for g in groups.split(",") if g.strip()], nz_values=nzs,
                       imbalance=pairs, channels=channels, attribute=attribute, data_root=data_root,
                       download=download, max_images=max_images, judge_epochs=judge_epochs, samples=samples, out=out,
                       on_message=console.print)
    keys = ("variant", "loss_d", "loss_g", "class_entropy", "max_class_share", "diversity_ratio", "frechet_judge",
            "class_recognition")
    console.print(markdown_table([{k: r[k] for k in keys} for r in result.rows]))
    console.print(markdown_table(result.saturation))
    console.print(f"-> {result.files['table_md']}, {result.files['figure']}, {result.files['losses']}")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.add_typer(gan_app, name="gan")
    groups["study"].command("gan")(study_gan)
