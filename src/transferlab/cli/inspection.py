"""``transferlab inspect | predict-imagenet | activations | data inspect``: look inside networks and datasets.

Thin commands: each calls one library verb of :mod:`transferlab.inspection.run` (which writes a table, a
figure, ``summary.json``, ``config.json``, ``log.txt`` and ``status.json`` to its run folder) and prints a
short summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .options import Backbone, Device, Out, Preprocess, Seed, TestFraction, Weights

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout instead of tables.")]


def _console():
    from rich.console import Console

    return Console(soft_wrap=True)  # long summary lines stay one line (tables still fit the width)


def _table(title: str, rows: list[dict], columns: list[str], limit: int | None = None):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        numeric = bool(rows) and isinstance(rows[0].get(column), (int, float))
        table.add_column(column, justify="right" if numeric else "left", no_wrap=numeric, overflow="fold")
    shown = rows if limit is None else rows[:limit]
    for row in shown:
        table.add_row(*[f"{row.get(c):,}" if isinstance(row.get(c), int) else
                        f"{row.get(c):.4f}" if isinstance(row.get(c), float) else str(row.get(c, ""))
                        for c in columns])
    if limit is not None and len(rows) > limit:
        table.caption = f"... {len(rows) - limit} more rows in the table file"
    return table


def _emit_json(obj) -> None:
    from .._utils import to_json

    typer.echo(to_json(obj))


def inspect_command(
    backbone: Annotated[str, typer.Argument(help="Registry name (vgg16, resnet50, timm/<name>, ...).")],
    input_size: Annotated[Optional[int], typer.Option("--input-size", min=1, help="Square input side in pixels "
                                                      "(default: the weights' crop size).")] = None,
    all_layers: Annotated[bool, typer.Option("--all-layers", help="Print every row, not only the layers "
                                             "with parameters.")] = False,
    out: Out = None,
    as_json: JsonFlag = False,
) -> None:
    """Architecture table: per layer type, output shape, parameters (with bias), multiply-accumulates; totals."""
    from ..inspection.run import inspect_backbone

    done = inspect_backbone(backbone, input_size, out=out)
    summary, totals, folder = done["summary"], done["totals"], done["out"]
    if as_json:
        _emit_json({**totals, "layers": summary.rows()[:-1], "out": str(folder)})
        return
    rows = [{"layer": row["cut_point"].split(",")[0] or row["module"], "type": row["type"],
             "output": row["output_shape"], "params": row["params"], "MACs": row["macs"]}
            for row in summary.rows()[:-1] if all_layers or row["params"] or row["macs"]]
    console = _console()
    console.print(_table(f"{backbone} at {'x'.join(map(str, summary.input_shape))}", rows, list(rows[0]),
                         None if all_layers else 60))
    console.print(f"total parameters {totals['total_params']:,} (conv {totals['conv_params']:,} in {totals['n_conv']} "
                  f"layers, fully connected {totals['fc_params']:,} in {totals['n_fc']} layers = "
                  f"{totals['fc_share']:.1%}); {totals['total_macs']:,} multiply-accumulates; "
                  f"{totals['outputs']:,} outputs")
    console.print(f"written to {folder}")


def predict_imagenet_command(
    images: Annotated[List[Path], typer.Argument(help="Image files.")],
    backbone: Backbone = "vgg16",
    weights: Weights = "imagenet",
    preprocess: Preprocess = "weights",
    top: Annotated[int, typer.Option("--top", min=1, help="Classes to show per image.")] = 5,
    no_normalize: Annotated[bool, typer.Option("--no-normalize", help="Also predict without the ImageNet "
                                               "normalisation (pixels in [0, 1]) to show why it matters.")] = False,
    train_mode: Annotated[bool, typer.Option("--train-mode", help="Also run seeded passes in train mode "
                                             "(dropout on) to show why eval mode matters.")] = False,
    passes: Annotated[int, typer.Option("--passes", min=1, help="Train-mode passes.")] = 5,
    seed: Seed = 0,
    device: Device = "auto",
    out: Out = None,
    as_json: JsonFlag = False,
) -> None:
    """Top-k ImageNet classes (names, probabilities) of images, with the weights' preprocessing in eval mode."""
    from ..inspection.run import predict_imagenet_images

    done = predict_imagenet_images(images, backbone=backbone, weights=weights, preprocess=preprocess, top=top,
                                   no_normalize=no_normalize, train_mode=train_mode, passes=passes, seed=seed,
                                   device=device, out=out)
    results, weights_id, folder = done["results"], done["weights_id"], done["out"]
    if as_json:
        _emit_json({"backbone": backbone, "weights_id": weights_id, "out": str(folder),
                    "predictions": [r.as_dict() for r in results]})
        return
    console = _console()
    for result in results:
        rows = [{"rank": r["rank"], "class": r["class_name"], "eval": r["probability"]} for r in result.eval.as_list()]
        if result.no_normalize is not None:
            for row, r in zip(rows, result.no_normalize.as_list()):
                row["no-normalize class"], row["no-normalize"] = r["class_name"], r["probability"]
        console.print(_table(result.image, rows, list(rows[0])))
        summary = result.train_summary()
        if summary:
            console.print(f"train mode ({summary['passes']} passes): top-1 equals the eval top-1 in "
                          f"{summary['top1_agreement']:.0%} of passes; top-1 per pass: "
                          + ", ".join(f"{n} ({p:.2f})" for n, p in zip(summary["top1_classes"],
                                                                       summary["top1_probabilities"])))
    if weights == "none":
        console.print("[yellow]random weights: the class names are valid but the predictions mean nothing[/yellow]")
    console.print(f"written to {folder}")


def activations_command(
    backbone: Annotated[str, typer.Argument(help="Registry name (vgg16, resnet18, ...).")],
    image: Annotated[Path, typer.Argument(help="Image file.")],
    layer: Annotated[Optional[str], typer.Option("--layer", "-l", help="Cut point with a (C, H, W) output "
                                                 "(default: the first one, conv1_1 for VGG).")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Show the N channels with the highest mean "
                                     "activation.")] = 16,
    channels: Annotated[Optional[str], typer.Option("--channels", help="Show these channels instead, "
                                                    "e.g. 0,5,7.")] = None,
    weights: Weights = "imagenet",
    preprocess: Preprocess = "weights",
    seed: Seed = 0,
    device: Device = "auto",
    out: Out = None,
) -> None:
    """Activation maps of one image at a layer (top-N channels or a chosen list) and the first-layer filters."""
    from ..inspection.run import activations

    done = activations(backbone, image, layer=layer, top=top, channels=channels, weights=weights,
                       preprocess=preprocess, seed=seed, device=device, out=out)
    result, ranked, folder = done["result"], done["ranked"], done["out"]
    console = _console()
    shown = [r for r in ranked if r["shown"]]
    console.print(_table(f"{backbone} {result.layer} {result.shape}: {result.selection}", shown,
                         ["rank", "channel", "mean", "max", "positive_fraction"], 20))
    console.print(f"written to {folder} (activations.png, filters.png, channels.csv)")


def data_inspect_command(
    data: Annotated[Optional[Path], typer.Argument(help="Dataset folder: DATA/<class>/... or "
                                                        "DATA/{train,test}/<class>/...; omit with --dataset.")] = None,
    train_per_class: Annotated[Optional[int], typer.Option("--train-per-class", min=1, help="Also count the "
                                                           "15 Scene style split with N training images per "
                                                           "class.")] = None,
    test_fraction: TestFraction = None,
    seed: Seed = 0,
    decode: Annotated[bool, typer.Option("--decode/--no-decode", help="Decode every image (finds truncated "
                                         "files) or read headers only (faster).")] = True,
    samples_per_class: Annotated[int, typer.Option("--samples-per-class", min=1, help="Images per class in "
                                                   "the sample grid.")] = 4,
    max_classes: Annotated[int, typer.Option("--max-classes", min=1, help="Classes in the sample grid "
                                             "(chosen with the seed when there are more).")] = 12,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="flowers102 | cifar10 | mnist: torchvision's "
                                                   "dataset (in --data-root) instead of DATA, with its own "
                                                   "splits.")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Folder of torchvision datasets "
                                                      "(default: the user cache directory).")] = None,
    out: Out = None,
    as_json: JsonFlag = False,
) -> None:
    """Dataset summary: images, classes, images per class per split, resolutions, colour modes, skipped files."""
    from rich.progress import track

    from ..inspection.run import data_inspect

    progress = None if as_json else (lambda items, total: track(items, total=total, description="reading images",
                                                                transient=True))
    done = data_inspect(data, train_per_class=train_per_class, test_fraction=test_fraction, seed=seed, decode=decode,
                        samples_per_class=samples_per_class, max_classes=max_classes, out=out, progress=progress,
                        dataset=dataset, data_root=data_root)
    summary, folder = done["summary"], done["out"]
    totals = summary.totals()
    if as_json:
        _emit_json({**summary.as_dict(), "out": str(folder)})
        return
    console = _console()
    console.print(f"{totals['images']:,} images, {totals['classes']} classes, {totals['distinct_resolutions']} "
                  f"distinct resolutions, {totals['skipped']} skipped files ({summary.layout}; {summary.split_note})")
    console.print(_table("images per class", summary.rows_classes(), list(summary.rows_classes()[0]), 30))
    console.print(_table("resolutions (width x height)", summary.rows_resolutions(), ["width", "height", "images"], 10))
    console.print(_table("colour modes", summary.rows_modes(), ["mode", "images", "note"]))
    if summary.skipped:
        console.print(_table("skipped files", summary.rows_skipped(), ["file", "reason"], 20))
    console.print(f"written to {folder}")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    """Add ``inspect``, ``predict-imagenet``, ``activations`` and ``data inspect`` to the app."""
    app.command("inspect")(inspect_command)
    app.command("predict-imagenet")(predict_imagenet_command)
    app.command("activations")(activations_command)
    if "data" not in groups:
        groups["data"] = typer.Typer(no_args_is_help=True, help="Look at image-folder datasets.")
        app.add_typer(groups["data"], name="data")
    groups["data"].command("inspect")(data_inspect_command)
