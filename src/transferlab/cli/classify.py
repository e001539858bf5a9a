"""Commands ``run``, ``predict`` and ``demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import options as opt

console = Console()


def run(
    data: Annotated[Path, typer.Argument(help="Image folder: DATA/<class>/... or DATA/train|test/<class>/...")],
    backbone: opt.Backbone = "vgg16",
    layer: opt.Layer = None,
    weights: opt.Weights = "imagenet",
    classifier: Annotated[str, typer.Option("--classifier", help="svm (LinearSVC, the assignment's) or logreg.")] = "svm",
    C: Annotated[str, typer.Option("--C", help="Regularisation C, or 'auto': k-fold CV on the training split.")] = "1.0",
    pca: Annotated[Optional[int], typer.Option("--pca", help="Reduce features to N dimensions with PCA first.")] = None,
    cv_folds: Annotated[int, typer.Option("--cv-folds", min=2, help="Folds for --C auto.")] = 5,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Seeded train/test splits (mean ± std).")] = 1,
    solver: opt.Solver = "auto",
    out: opt.Out = None,
    train_per_class: opt.TrainPerClass = 100,
    test_fraction: opt.TestFraction = None,
    seed: opt.Seed = 0,
    preprocess: opt.Preprocess = "weights",
    pooling: opt.Pooling = "none",
    l2: opt.L2 = True,
    batch_size: opt.ExtractionBatchSize = None,
    workers: opt.Workers = None,
    device: opt.Device = "auto",
    precision: opt.Precision = "fp32",
    engine: opt.Engine = "torch",
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
    max_pixels: opt.MaxPixels = opt.DEFAULT_MAX_PIXELS,
    max_feature_gb: opt.MaxFeatureGb = opt.DEFAULT_MAX_FEATURE_GB,
) -> None:
    """Extract (cached) features, fit a linear classifier on train, score test once, save everything."""
    from ..classify.probe import DEFAULT_C_GRID
    from ..classify.run import LinearOptions, parse_C, run_linear
    from ..pipeline import ExtractionOptions

    extraction = ExtractionOptions(
        backbone=backbone, weights=weights, layers=[layer] if layer else [], train_per_class=train_per_class,
        test_fraction=test_fraction, seed=seed, preprocess=preprocess, pooling=pooling, l2=l2,
        batch_size=batch_size, workers=workers, device=device, precision=precision, cache_dir=cache_dir,
        use_cache=not no_cache, max_pixels=max_pixels, engine=engine, max_feature_gb=max_feature_gb)
    linear = LinearOptions(classifier, parse_C(C), pca, cv_folds, DEFAULT_C_GRID, repeats, solver)
    out = _resolve_out(out, "run")
    metrics = run_linear(data, out, extraction, linear)
    if metrics:  # empty on a torchrun rank other than 0
        print_summary(metrics, out)


def _resolve_out(out: Path | None, command: str) -> Path | None:
    from ..runs import make_run_dir
    from ..training.distributed import is_main_process

    if out is None and not is_main_process():
        return None  # a torchrun rank other than 0 writes no run folder
    return out if out is not None else make_run_dir(None, command)


def print_summary(metrics: dict, out: Path) -> None:
    console.print(f"[bold]{metrics['backbone']}[/] @ {metrics['layer']} -> {metrics['classifier']} "
                  f"(C={metrics['chosen_C']:g}, {metrics['C_mode']}), {metrics['feature_size']:,} features, "
                  f"{metrics['n_train']} train / {metrics['n_test']} test images")
    console.print(f"test accuracy [bold green]{metrics['accuracy']:.4f}[/] "
                  f"(balanced {metrics['balanced_accuracy']:.4f})")
    if metrics.get("repeats"):
        r = metrics["repeats"]
        console.print(f"over {len(r['accuracies'])} seeded splits: {r['mean']:.4f} ± {r['std']:.4f}")
    if metrics.get("n_skipped"):
        console.print(f"[yellow]{metrics['n_skipped']} file(s) skipped[/] (see skipped.txt)")
    console.print(f"extraction {metrics['extraction_seconds']:.1f} s, fit {metrics['fit_seconds']:.2f} s -> {out}")


def predict(
    model: Annotated[Path, typer.Argument(help="A saved model folder (OUT/model of `run` or `finetune`).")],
    images: Annotated[list[Path], typer.Argument(help="Image files or folders (searched recursively).")],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Show the k best classes.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    batch_size: opt.ExtractionBatchSize = None,
    device: opt.Device = "auto",
    engine: opt.Engine = "torch",
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
) -> None:
    """Predict the class of images with a saved model."""
    from ..classify import load_model
    from ..classify.predict import predict_images

    loaded = load_model(model)
    rows, skipped = predict_images(loaded, images, top_k=top_k, batch_size=batch_size, device=device,
                                   cache_dir=cache_dir, use_cache=not no_cache, engine=engine)
    if as_json:
        typer.echo(json.dumps({"predictions": rows, "skipped": [{"path": p, "reason": r} for p, r in skipped]},
                              indent=2))
        return
    table = Table("image", "prediction", "score", *(["top-k"] if top_k > 1 else []))
    for row in rows:
        extra = [", ".join(f"{t['class']} {t['score']:.3f}" for t in row["top_k"])] if top_k > 1 else []
        table.add_row(row["path"], row["class"], f"{row['score']:.3f}", *extra)
    console.print(table)
    for path, reason in skipped:
        console.print(f"[yellow]skipped[/] {path}: {reason}")


def demo(
    out: opt.Out = None,
    task: Annotated[str, typer.Option("--task", help="photos: EfficientNet-Lite0's ImageNet features on patches of "
                                                     "bundled photographs (needs the lite0 extra); digits: a small "
                                                     "CNN pretrained on digits 0-4 (no weights needed).")] = "photos",
    train_per_class: Annotated[Optional[int], typer.Option("--train-per-class", min=1, help="Training images per "
                                                           "class (default 5 for photos, 10 for digits).")] = None,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Seeded training draws (mean ± std).")] = 5,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="digits only: pretraining epochs on the source "
                                                                "digits.")] = 12,
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
) -> None:
    """Offline transfer-learning demo: real ImageNet features on bundled photographs, or (--task digits) digits."""
    from ..demo import TASKS, run_demo
    from ..errors import ConfigError

    if task not in TASKS:
        raise ConfigError(f"--task must be one of {', '.join(TASKS)}; got {task!r}")
    if task == "digits":
        _demo_digits(out, train_per_class or 10, repeats, epochs, seed, device)
        return
    k = train_per_class or 5
    result = run_demo(out, task="photos", train_per_class=k, repeats=repeats, seed=seed, device=device)
    table = Table("features", "size", "accuracy", "worst draw",
                  title=f"Which of {len(result['classes'])} bundled photographs a patch shows: LinearSVC(C=1), {k} "
                        f"training patches per class (one half of each photograph), {result['n_test']} test patches "
                        f"(the other half), {repeats} seeded draws")
    for row in result["rows"]:
        table.add_row(row["features"], str(row["feature_size"]),
                      f"{row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f}", f"{row['accuracy_min']:.3f}")
    console.print(table)
    for item in result["top5"]:
        best = ", ".join(f"{name} {p:.2f}" for name, p in item["top5"][:3])
        console.print(f"ImageNet top-3 of {item['photo']}: {best}")
    console.print(f"done in {result['seconds']:.0f} s -> {result['out']} (report.md, demo_table.csv, demo_curve.csv, "
                  "demo_accuracy.png, imagenet_top5.png, gradcam.png, pretrained/, random/, pixels/)")
    console.print(f"try: transferlab run {result['out']}/data/patches -b efficientnet_lite0 -l pre_logits")


def _demo_digits(out, train_per_class: int, repeats: int, epochs: int, seed: int, device: str) -> None:
    from ..demo import run_demo

    result = run_demo(out, task="digits", epochs=epochs, train_per_class=train_per_class, repeats=repeats,
                      seed=seed, device=device)
    console.print(f"pretraining on digits 0-4: accuracy {result['source_test_accuracy']:.3f} on held-out "
                  "source digits")
    table = Table("features (target: digits 5-9)", "size", "accuracy", title=f"LinearSVC(C=1), "
                  f"{train_per_class} training images per class, {repeats} seeded splits")
    for row in result["rows"]:
        table.add_row(row["features"], str(row["feature_size"]),
                      f"{row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f}")
    console.print(table)
    console.print(f"done in {result['seconds']:.0f} s -> {result['out']} (report.md, demo_table.csv, "
                  "demo_accuracy.png, pretraining/, pretrained/, pretrained_pool3/, random/)")
    console.print(f"try: transferlab run {result['out']}/data/target -b digits_cnn -w {result['weights']} "
                  "--train-per-class 10 --C auto")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command()(run)
    app.command()(predict)
    app.command()(demo)
