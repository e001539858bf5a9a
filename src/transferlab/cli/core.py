"""Core commands: ``backbones``, ``layers``, ``extract``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from . import options as opt

console = Console()


def backbones(
    weights: Annotated[bool, typer.Option("--weights", help="List every weights entry (tag, preprocessing, "
                                                             "source) instead of one row per backbone.")] = False,
) -> None:
    """List the backbone registry (``timm/<name>`` works too when timm is installed)."""
    from rich.markup import escape

    from ..backbones.catalog import listing  # the built-in entries come from a static catalog: no torch

    # Names, tags and shapes never wrap (a name cut in two is unreadable); only the free text column does.
    # A light box leaves the text column room at 80 columns; every cell is escaped (rich markup would eat
    # "[timm]" in an extra's name).
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True, padding=(0, 1))
    if weights:
        for name in ("backbone", "weights tag (*: imagenet)", "input", "classes"):
            table.add_column(name, no_wrap=True)
        table.add_column("trained on", ratio=1)
    else:
        for name in ("name", "input", "layer", "weights"):
            table.add_column(name, no_wrap=True)
        table.add_column("description", ratio=1)
    for info in listing():
        name = escape(info.name)
        if info.error is not None:  # an entry that needs an optional extra
            table.add_row(name, "", "", "", escape(info.error)) if not weights else None
            continue
        if weights:
            for i, entry in enumerate(info.weights):
                pre = entry.preprocessing
                table.add_row(name, escape(entry.tag + (" *" if i == 0 else "")),
                              f"{pre.resize_size}->{pre.crop_size}", str(entry.classes), escape(entry.trained_on))
            continue
        pre = info.preprocessing
        table.add_row(name, f"{pre.resize_size}->{pre.crop_size}", escape(info.default_layer),
                      escape(info.weights[0].tag) if info.weights else "-", escape(info.description))
    console.print(table)
    if not weights:
        console.print("layer, weights: the defaults (all weights: `transferlab backbones --weights`).")
    console.print(escape("Any timm model: timm/<name> (pip install 'transferlab[timm]')."))


def layers(
    backbone: Annotated[str, typer.Argument(help="Registry name.")],
    all_nodes: Annotated[bool, typer.Option("--all", help="Also list every graph node name.")] = False,
) -> None:
    """List the named cut points of a backbone with output shape and feature size."""
    from ..backbones.catalog import layers_of

    catalogued = layers_of(backbone)  # the built-in entries come from a static catalog: no torch
    if catalogued is not None and not all_nodes:
        table = Table("layer", "node", "output shape", "features", "avg-pooled")
        for row in catalogued:
            table.add_row(row.name, row.node, str(row.shape), f"{row.features:,}",
                          f"{row.avg_pooled:,}" if row.avg_pooled is not None else "")
        console.print(table)
        return
    from ..backbones import get_spec, graph_nodes, layer_shapes
    from ..features.pooling import pooled_size

    spec = get_spec(backbone)
    shapes = layer_shapes(spec)
    table = Table("layer", "node", "output shape", "features", "avg-pooled")
    for name, node in spec.cut_points.items():
        shape = shapes[name]
        table.add_row(name, node, str(shape), f"{pooled_size(shape, 'none'):,}",
                      f"{pooled_size(shape, 'avg'):,}" if len(shape) > 1 else "")
    console.print(table)
    if all_nodes:
        import torch

        with torch.device("meta"):
            model = spec.build()
        console.print(" ".join(graph_nodes(model.eval(), spec)))


def extract(
    data: Annotated[Path, typer.Argument(help="Image folder: DATA/<class>/... or DATA/train|test/<class>/...")],
    backbone: opt.Backbone = "vgg16",
    layer: Annotated[Optional[list[str]], typer.Option("--layer", "-l", help="Cut point(s); repeat for several "
                                                                             "(one forward pass).")] = None,
    weights: opt.Weights = "imagenet",
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
    grayscale: opt.Grayscale = "duplicate",
) -> None:
    """Extract features of a dataset: OUT/features.npz (X_train, y_train, X_test, y_test, paths, classes)."""
    from ..pipeline import ExtractionOptions, extract_dataset

    result = extract_dataset(data, out, ExtractionOptions(
        backbone=backbone, weights=weights, layers=layer or [], train_per_class=train_per_class,
        test_fraction=test_fraction, seed=seed, preprocess=preprocess, pooling=pooling, l2=l2,
        batch_size=batch_size, workers=workers, device=device, precision=precision, cache_dir=cache_dir,
        use_cache=not no_cache, max_pixels=max_pixels, engine=engine, grayscale=grayscale,
        max_feature_gb=max_feature_gb))
    if result is None:  # a torchrun rank other than 0: it helped extract, rank 0 reports
        return
    for name, feats in result.features.items():
        console.print(f"[bold]{name}[/]: X_train {feats.X_train.shape}, X_test {feats.X_test.shape}")
    _print_skipped(result.skipped)
    how = "from cache" if result.extraction.from_cache else f"{result.extraction.n_forward} images forwarded"
    console.print(f"{how} in {result.extraction.seconds:.1f} s -> {result.out}")


def _print_skipped(skipped: list[tuple[str, str]]) -> None:
    if skipped:
        console.print(f"[yellow]skipped {len(skipped)} file(s)[/] (listed in skipped.txt):")
        for path, reason in skipped[:10]:
            console.print(f"  {path}: {reason}")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command()(backbones)
    app.command()(layers)
    app.command()(extract)
