"""``inspect``, ``predict-imagenet``, ``activations`` and ``data inspect`` as library verbs.

Each verb takes JSON-able arguments, does its work inside one :class:`~transferlab.runs.Run` (log from the first
line; ``config.json`` with the call, the library versions and the resolved device; ``status.json`` at the end),
writes its table (CSV + Markdown), figure (PNG) and ``summary.json``, and returns what the command prints, so
``transferlab rerun`` replays it. The command line only parses options, calls one verb and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from ..runs import Run


def inspect_backbone(backbone: str, input_size: int | None = None, *, out: Path | str | None = None
                     ) -> dict[str, Any]:
    """``transferlab inspect``: the architecture table (per layer: type, output shape, parameters, MACs) and its
    totals; returns ``{"summary": ArchitectureSummary, "totals", "out"}``."""
    from .._utils import write_json
    from ..report import write_table
    from .architecture import inspect_architecture, plot_architecture

    call = {"backbone": backbone, "input_size": input_size}
    with Run("inspect", "transferlab.inspection.run:inspect_backbone", call, out) as run:
        summary = inspect_architecture(backbone, input_size)
        totals = summary.totals()
        run.record(backbone=backbone, input_size=summary.input_shape[-1], resolved_device="cpu")
        write_table(summary.rows(), run.out, "architecture")
        write_json(run.out / "summary.json", totals)
        plot_architecture(summary, run.out / "architecture.png")
        run.log.info("%s at %s: %d parameters, %d multiply-accumulates", backbone, summary.input_shape,
                     totals["total_params"], totals["total_macs"])
    return {"summary": summary, "totals": totals, "out": run.out}


def predict_imagenet_images(images: Sequence[Path | str], *, backbone: str = "vgg16", weights: str = "imagenet",
                            preprocess: str = "weights", top: int = 5, no_normalize: bool = False,
                            train_mode: bool = False, passes: int = 5, seed: int = 0, device: str = "auto",
                            out: Path | str | None = None) -> dict[str, Any]:
    """``transferlab predict-imagenet``: top-k ImageNet classes of ``images`` in eval mode (optionally without the
    normalisation, and seeded train-mode passes); returns ``{"results", "weights_id", "backbone", "out"}``."""
    from .._utils import resolve_device, write_json
    from ..backbones import load_backbone
    from ..data import load_rgb
    from ..report import write_table
    from .imagenet import load_images, plot_predictions, predict_imagenet

    images = [Path(p) for p in images]
    call = {"images": images, "backbone": backbone, "weights": weights, "preprocess": preprocess, "top": top,
            "no_normalize": no_normalize, "train_mode": train_mode, "passes": passes, "seed": seed,
            "device": device}
    with Run("predict-imagenet", "transferlab.inspection.run:predict_imagenet_images", call, out) as run:
        load_images(images)  # a missing image fails before the network is built
        dev = resolve_device(device)
        net = load_backbone(backbone, weights, seed=seed, preprocessing_mode=preprocess)
        run.record(images=[str(p) for p in images], backbone=backbone, weights=weights, weights_id=net.weights_id,
                   preprocessing=net.preprocessing.as_dict(), top=top, no_normalize=no_normalize,
                   train_mode=train_mode, passes=passes if train_mode else 0, seed=seed, device=device,
                   resolved_device=str(dev))
        results = predict_imagenet(net, images, k=top, normalize_variant=no_normalize,
                                   train_passes=passes if train_mode else 0, seed=seed, device=dev)
        write_table([row for r in results for row in r.rows()], run.out, "predictions")
        write_json(run.out / "summary.json", {"backbone": backbone, "weights_id": net.weights_id,
                                              "predictions": [r.as_dict() for r in results]})
        plot_predictions(results, [load_rgb(p) for p in images], run.out / "predictions.png",
                         title=f"{backbone} ({net.weights_id})")
        for result in results:
            best = result.eval.as_list()[0]
            run.log.info("%s: %s (%.4f)", result.image, best["class_name"], best["probability"])
    return {"results": results, "weights_id": net.weights_id, "backbone": backbone, "out": run.out}


def activations(backbone: str, image: Path | str, *, layer: str | None = None, top: int = 16,
                channels: Sequence[int] | str | None = None, weights: str = "imagenet", preprocess: str = "weights",
                seed: int = 0, device: str = "auto", out: Path | str | None = None) -> dict[str, Any]:
    """``transferlab activations``: activation maps of one image at ``layer`` (the ``top`` channels, or
    ``channels``) and the first-layer filters; returns ``{"result", "ranked", "first_conv", "out"}``."""
    from .._utils import resolve_device, write_json
    from ..backbones import get_spec, load_backbone
    from ..report import write_table
    from .activations import (activation_maps, filter_tiles, first_conv, parse_channels, plot_activations,
                              plot_filters)
    from .imagenet import load_images

    get_spec(backbone)
    chosen = parse_channels(channels) if isinstance(channels, str) or channels is None else list(channels)
    call = {"backbone": backbone, "image": image, "layer": layer, "top": top, "channels": chosen,
            "weights": weights, "preprocess": preprocess, "seed": seed, "device": device}
    with Run("activations", "transferlab.inspection.run:activations", call, out) as run:
        load_images([image])
        dev = resolve_device(device)
        net = load_backbone(backbone, weights, seed=seed, preprocessing_mode=preprocess)
        result = activation_maps(net, image, layer, top=top, channels=chosen, device=dev)
        conv_name, conv = first_conv(net.model)
        run.record(backbone=backbone, image=str(image), layer=result.layer, top=top, channels=chosen,
                   weights=weights, weights_id=net.weights_id, preprocessing=net.preprocessing.as_dict(), seed=seed,
                   device=device, resolved_device=str(dev))
        ranked = result.ranked_stats()
        write_table(ranked, run.out, "channels")
        write_json(run.out / "summary.json", {"image": str(image), "layer": result.layer, "shape": list(result.shape),
                                              "selection": result.selection, "channels_shown": result.channels,
                                              "first_conv": conv_name, "channel_stats": ranked})
        plot_activations(result, run.out / "activations.png",
                         title=f"{backbone} {result.layer} {result.shape}: {result.selection} ({Path(image).name})")
        plot_filters(filter_tiles(conv), run.out / "filters.png",
                     title=f"{backbone} {conv_name}: {conv.out_channels} filters {tuple(conv.kernel_size)} as RGB")
        run.log.info("%s %s %s: %s", backbone, result.layer, result.shape, result.selection)
    return {"result": result, "ranked": ranked, "first_conv": conv_name, "out": run.out}


def data_inspect(data: Path | str | None = None, *, train_per_class: int | None = None,
                 test_fraction: float | None = None, seed: int = 0, decode: bool = True, samples_per_class: int = 4,
                 max_classes: int = 12, out: Path | str | None = None, progress: Callable | None = None,
                 dataset: str | None = None, data_root: Path | str | None = None) -> dict[str, Any]:
    """``transferlab data inspect``: images, classes, images per class per split, resolutions, colour modes and
    skipped files of ``data`` (an image folder) or of torchvision ``dataset`` (in ``data_root``, as ``finetune
    --dataset`` loads it); returns ``{"summary": DatasetSummary, "out"}``. ``progress(items, total)`` may
    wrap the image loop (a progress bar)."""
    from .._utils import write_json
    from ..errors import ConfigError
    from ..report import write_table
    from .dataset_summary import plot_resolutions, plot_samples, summarize_dataset, summarize_torchvision

    if (data is None) == (dataset is None):
        raise ConfigError("give either an image folder DATA or --dataset flowers102|cifar10|mnist (exactly one)")
    call = {"data": data, "train_per_class": train_per_class, "test_fraction": test_fraction, "seed": seed,
            "decode": decode, "samples_per_class": samples_per_class, "max_classes": max_classes,
            "dataset": dataset, "data_root": None if data_root is None else str(data_root)}
    inputs = (data,) if data is not None else ()
    with Run("data inspect", "transferlab.inspection.run:data_inspect", call, out, inputs=inputs) as run:
        if dataset is not None:
            summary = summarize_torchvision(dataset, data_root, progress=progress)
        else:
            summary = summarize_dataset(data, train_per_class=train_per_class, test_fraction=test_fraction,
                                        seed=seed, decode=decode, progress=progress)
        run.record(data=None if data is None else str(data), dataset=dataset, train_per_class=train_per_class,
                   test_fraction=test_fraction, seed=seed, decode=decode, samples_per_class=samples_per_class, max_classes=max_classes,
                   resolved_device="cpu")
        write_table(summary.rows_classes(), run.out, "classes")
        write_table(summary.rows_resolutions(), run.out, "resolutions")
        write_table(summary.rows_modes(), run.out, "color_modes")
        write_table(summary.rows_skipped(), run.out, "skipped")
        write_json(run.out / "summary.json", summary.as_dict())
        plot_resolutions(summary, run.out / "resolutions.png")
        plot_samples(summary, run.out / "samples.png", per_class=samples_per_class, max_classes=max_classes,
                     seed=seed)
        totals = summary.totals()
        run.log.info("%d images, %d classes, %d skipped files", totals["images"], totals["classes"],
                     totals["skipped"])
    return {"summary": summary, "out": run.out}
