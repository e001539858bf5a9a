"""``transferlab finetune`` and ``transferlab study finetune`` (thin: options -> library call -> summary)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import options as opt

console = Console()

Freeze = Annotated[Optional[str], typer.Option(
    "--freeze", help="all-but-head (train only the new head), none (train everything) or up-to:LAYER (freeze from "
                     "the input through LAYER). Default: all-but-head, or none with --from-scratch.")]
FromScratch = Annotated[bool, typer.Option("--from-scratch", help="Random initialisation, every layer trained.")]
BackboneLrFactor = Annotated[float, typer.Option(
    "--backbone-lr-factor", help="Discriminative learning rates: the backbone trains at lr x this (head at lr).")]
Augment = Annotated[str, typer.Option("--augment", help="none | light (random resized crop + flip) | seed "
                                                        "(report 001's list), optionally +noise (Gaussian, sigma "
                                                        "0.1) and/or +cutout (random erasing), e.g. seed+cutout.")]
Epochs = Annotated[int, typer.Option("--epochs", min=1, help="Maximum number of epochs.")]
Optimizer = Annotated[str, typer.Option("--optimizer", help="sgd (momentum) | adamw")]
Lr = Annotated[Optional[float], typer.Option("--lr", help="Learning rate of the head (default: sgd 0.01, "
                                                          "adamw 0.001).")]
Momentum = Annotated[float, typer.Option("--momentum", help="SGD momentum.")]
WeightDecay = Annotated[Optional[float], typer.Option("--weight-decay", help="Default: sgd 1e-4, adamw 0.01.")]
Schedule = Annotated[str, typer.Option("--schedule", help="cosine | step (x0.1 every --step-size epochs) | none")]
StepSize = Annotated[Optional[int], typer.Option("--step-size", min=1, help="Epochs per step (default: epochs/3).")]
LabelSmoothing = Annotated[float, typer.Option("--label-smoothing", help="Cross-entropy label smoothing.")]
GradClip = Annotated[Optional[float], typer.Option("--grad-clip", help="Clip the gradient norm to this value.")]
ValFraction = Annotated[float, typer.Option("--val-fraction", help="Validation part carved from the training "
                                                                   "images (stratified, seeded).")]
Patience = Annotated[Optional[int], typer.Option("--patience", help="Early stopping: epochs without validation "
                                                                    "improvement (0: never stop early).")]
Amp = Annotated[bool, typer.Option("--amp/--no-amp", help="Mixed precision (float16 autocast) on CUDA GPUs.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in --out exactly.")]
Dataset = Annotated[Optional[str], typer.Option("--dataset", help="flowers102 | cifar10 | mnist (torchvision, "
                                                                  "downloaded into --data-root) instead of DATA; "
                                                                  "Flowers-102 keeps its own train/val/test.")]
DataRoot = Annotated[Optional[Path], typer.Option("--data-root", help="Folder of torchvision datasets "
                                                                      "(default: the user cache directory).")]
InputSize = Annotated[Optional[int], typer.Option("--input-size", min=8, help="Side of the crop fed to the network "
                                                 "(default: the weights' crop size; the resize before it is scaled "
                                                 "alike). Recorded in the saved model, so predict uses it.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")]


def finetune(
    data: Annotated[Optional[Path], typer.Argument(help="Image folder (DATA/<class>/... or DATA/train|test/...); "
                                                        "omit with --dataset.")] = None,
    backbone: opt.Backbone = "resnet18",
    weights: opt.Weights = "imagenet",
    from_scratch: FromScratch = False,
    freeze: Freeze = None,
    backbone_lr_factor: BackboneLrFactor = 1.0,
    augment: Augment = "light",
    epochs: Epochs = 10,
    batch_size: opt.BatchSize = 32,
    optimizer: Optimizer = "sgd",
    lr: Lr = None,
    momentum: Momentum = 0.9,
    weight_decay: WeightDecay = None,
    schedule: Schedule = "cosine",
    step_size: StepSize = None,
    label_smoothing: LabelSmoothing = 0.0,
    grad_clip: GradClip = None,
    val_fraction: ValFraction = 0.2,
    patience: Patience = 5,
    amp: Amp = True,
    preprocess: opt.Preprocess = "weights",
    input_size: InputSize = None,
    grayscale: opt.Grayscale = "duplicate",
    train_per_class: opt.TrainPerClass = 100,
    test_fraction: opt.TestFraction = None,
    dataset: Dataset = None,
    data_root: DataRoot = None,
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
    workers: opt.Workers = None,
    out: opt.Out = None,
    resume: Resume = False,
    progress: ProgressOpt = True,
) -> None:
    """Fine-tune a backbone with a new head (frozen or not, augmented or not); works under torchrun (DDP)."""
    from ..finetune import finetune as run

    metrics = run(data, dataset=dataset, data_root=data_root, out=out, resume=resume, progress=progress,
                  backbone=backbone, weights=weights, from_scratch=from_scratch, freeze=freeze,
                  backbone_lr_factor=backbone_lr_factor, augment=augment, epochs=epochs, batch_size=batch_size,
                  optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay, schedule=schedule,
                  step_size=step_size, label_smoothing=label_smoothing, grad_clip=grad_clip,
                  val_fraction=val_fraction, patience=patience or None, amp=amp, preprocess=preprocess,
                  input_size=input_size, grayscale=grayscale, train_per_class=train_per_class,
                  test_fraction=test_fraction, seed=seed, device=device, workers=_workers(workers))
    if not metrics:  # a non-zero rank under torchrun: rank 0 reports
        return
    stop = " (early stop)" if metrics["stopped_early"] else ""
    console.print(f"[bold]{metrics['backbone']}[/] freeze {metrics['freeze']}, augment {metrics['augment']}: "
                  f"best epoch {metrics['best_epoch']}/{metrics['epochs_run']}{stop}, "
                  f"val {metrics['val_accuracy']:.4f}, [bold]test accuracy {metrics['accuracy']:.4f}[/] "
                  f"({metrics['n_test']} images)")
    console.print(f"{metrics['trainable_params']:,} of {metrics['total_params']:,} parameters trained; "
                  f"{metrics['train_time_s']:.1f} s of training, {metrics['train_images_per_s'] or 0:.1f} images/s")
    if metrics.get("n_skipped"):
        skipped = Path(metrics["out"]) / "skipped.json"
        console.print(f"[yellow]{metrics['n_skipped']} file(s) skipped[/] (see {skipped})")
    console.print(f"-> {metrics['out']} (model in {Path(metrics['out']) / 'model'})")


def study_finetune(
    data: Annotated[Path, typer.Argument(help="Image folder.")],
    backbone: Annotated[Optional[list[str]], typer.Option("--backbone", "-b", help="Backbone(s) to compare; "
                                                                                   "repeat the option.")] = None,
    weights: opt.Weights = "imagenet",
    freeze: Annotated[Optional[list[str]], typer.Option("--freeze", help="Freeze policies to compare (default: "
                                                                         "all-but-head and none).")] = None,
    augment: Annotated[Optional[list[str]], typer.Option("--augment", help="Presets to compare (default: none "
                                                                           "and seed).")] = None,
    svm: Annotated[bool, typer.Option("--svm/--no-svm", help="Add the linear-SVM row on the same split.")] = True,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Train each combination N times (training seeds "
                                         "--seed ... --seed+N-1, the same splits): mean ± std in the table and "
                                         "figure.")] = 1,
    epochs: Epochs = 10,
    batch_size: opt.BatchSize = 32,
    optimizer: Optimizer = "sgd",
    lr: Lr = None,
    schedule: Schedule = "cosine",
    val_fraction: ValFraction = 0.2,
    patience: Patience = 5,
    preprocess: opt.Preprocess = "weights",
    input_size: InputSize = None,
    grayscale: opt.Grayscale = "duplicate",
    train_per_class: opt.TrainPerClass = 100,
    test_fraction: opt.TestFraction = None,
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
    workers: opt.Workers = None,
    out: opt.Out = None,
    cache_dir: opt.CacheDir = None,
    progress: ProgressOpt = True,
) -> None:
    """Report 001's comparison: frozen vs trainable, with vs without augmentation, backbones, and the SVM."""
    from ..finetune.study import study_finetune as run
    from ..report.tables import markdown_table

    result = run(data, backbones=backbone or ["vgg16"], weights=weights, freezes=freeze or ["all-but-head", "none"],
                 augments=augment or ["none", "seed"], svm=svm, out=out, progress=progress, cache_dir=cache_dir,
                 repeats=repeats, epochs=epochs, **({"input_size": input_size} if input_size is not None else {}),
                 **({"grayscale": grayscale} if grayscale != "duplicate" else {}),
                 batch_size=batch_size, optimizer=optimizer, lr=lr, schedule=schedule, val_fraction=val_fraction,
                 patience=patience or None, preprocess=preprocess, train_per_class=train_per_class,
                 test_fraction=test_fraction, seed=seed, device=device, workers=_workers(workers))
    shown = [{**{k: r[k] for k in ("backbone", "method", "freeze", "augment", "val_accuracy")},
              "test_accuracy": r["test_accuracy_pm"], **({"repeats": r["test_accuracies"]} if repeats > 1 else {})}
             for r in result["rows"]]
    console.print(markdown_table(shown))
    console.print(f"-> {result['table']}, {result['figure']}, {result['curves']}")


def augment_preview(
    image: Annotated[Path, typer.Argument(help="Image file to augment.")],
    backbone: opt.Backbone = "resnet18",
    augment: Augment = "seed",
    n: Annotated[int, typer.Option("--n", min=1, help="Augmented versions to draw.")] = 8,
    input_size: InputSize = None,
    grayscale: opt.Grayscale = "duplicate",
    preprocess: opt.Preprocess = "weights",
    seed: opt.Seed = 0,
    out: opt.Out = None,
) -> None:
    """One image and N versions drawn by `finetune --augment`'s training transform (report 001, Fig. 1.9)."""
    from ..finetune.preview import augment_preview as run

    done = run(image, backbone=backbone, augment=augment, n=n, seed=seed, input_size=input_size,
               grayscale=grayscale, preprocess=preprocess, out=out)
    console.print(f"{done['n']} augmented versions at {done['crop_size']} px -> {done['figure']}")


def _workers(workers: int | None) -> int:
    from ..features.extract import default_workers

    return default_workers() if workers is None else workers


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("finetune")(finetune)
    groups["study"].command("finetune")(study_finetune)
    if "data" not in groups:
        groups["data"] = typer.Typer(no_args_is_help=True, help="Look at image-folder datasets.")
        app.add_typer(groups["data"], name="data")
    groups["data"].command("augment-preview")(augment_preview)
