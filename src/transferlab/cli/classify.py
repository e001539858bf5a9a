"""Commands ``run``, ``predict`` and ``demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..classify.probe import DEFAULT_C_GRID
from ..data import DEFAULT_MAX_PIXELS
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
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
    max_pixels: opt.MaxPixels = DEFAULT_MAX_PIXELS,
) -> None:
    """Extract (cached) features, fit a linear classifier on train, score test once, save everything."""
    from ..classify.run import LinearOptions, parse_C, run_linear
    from ..pipeline import ExtractionOptions

    extraction = ExtractionOptions(
        backbone=backbone, weights=weights, layers=[layer] if layer else [], train_per_class=train_per_class,
        test_fraction=test_fraction, seed=seed, preprocess=preprocess, pooling=pooling, l2=l2,
        batch_size=batch_size, workers=workers, device=device, precision=precision, cache_dir=cache_dir,
        use_cache=not no_cache, max_pixels=max_pixels)
    linear = LinearOptions(classifier, parse_C(C), pca, cv_folds, DEFAULT_C_GRID, repeats)
    out = _resolve_out(out, "run")
    metrics = run_linear(data, out, extraction, linear)
    print_summary(metrics, out)


def _resolve_out(out: Path | None, command: str) -> Path:
    from ..runs import make_run_dir

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
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
) -> None:
    """Predict the class of images with a saved model."""
    from ..classify import load_model
    from ..classify.predict import predict_images

    loaded = load_model(model)
    rows, skipped = predict_images(loaded, images, top_k=top_k, batch_size=batch_size, device=device,
                                   cache_dir=cache_dir, use_cache=not no_cache)
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
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Pretraining epochs on the source digits.")] = 12,
    train_per_class: Annotated[int, typer.Option("--train-per-class", min=1, help="Target training images per "
                                                                                  "class.")] = 10,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Seeded target splits.")] = 5,
    seed: opt.Seed = 0,
    device: opt.Device = "auto",
) -> None:
    """Offline transfer-learning demo on scikit-learn's digits (no network, no weights file)."""
    from ..demo import run_demo

    result = run_demo(out, epochs=epochs, train_per_class=train_per_class, repeats=repeats, seed=seed,
                      device=device)
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
