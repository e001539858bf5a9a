"""The digits demo (``transferlab demo --task digits``): needs no weights; a small CNN pretrained on
scikit-learn's digits 0-4 stands in for ImageNet and is transferred to digits 5-9."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backbones import get_spec
from ..classify import run_linear
from ..classify.probe import fit_classifier, make_classifier
from ..data import ImagePathDataset, image_transform, load_split, write_digits_folder
from ..features import l2_normalize
from ..pipeline import ExtractionOptions
from ..report.plots import save_figure
from ..report.tables import markdown_table, write_table
from ..runs import Run
from ..training import History


SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)


def pretrain_source(folder: Path, out: Path, epochs: int, seed: int, device: str = "auto") -> tuple[Path, dict]:
    """Train ``digits_cnn`` from scratch on the source digits with the fine-tuning trainer.

    Returns the weights file (the trained network's state dict, usable as ``--weights PATH``) and the
    trainer's test metrics on held-out source digits.
    """
    from ..finetune import finetune

    metrics = finetune(folder, backbone="digits_cnn", from_scratch=True, augment="none", epochs=epochs,
                       batch_size=64, optimizer="adamw", lr=2e-3, schedule="none", patience=None,
                       test_fraction=0.2, seed=seed, device=device, out=out)
    return out / "model" / "tensors.safetensors", metrics


def raw_pixel_accuracy(folder: Path, train_per_class: int, seed: int) -> tuple[float, int]:
    """LinearSVC(C=1) on L2-normalised pixels (digits_cnn's preprocessing), the no-network baseline."""
    split = load_split(folder, train_per_class=train_per_class, seed=seed)
    transform = image_transform(get_spec("digits_cnn").preprocessing)

    def matrix(samples):
        dataset = ImagePathDataset([s.path for s in samples], [s.label for s in samples], transform)
        x = torch.stack([dataset[i][0] for i in range(len(dataset))]).flatten(1)
        return l2_normalize(x).numpy(), np.array([s.label for s in samples])

    (X_train, y_train), (X_test, y_test) = matrix(split.train), matrix(split.test)
    svm, _ = fit_classifier(make_classifier("svm", 1.0), X_train, y_train)
    return float(svm.score(X_test, y_test)), X_train.shape[1]


def run_digits_demo(out: Path | str | None = None, *, epochs: int = 12, train_per_class: int = 10, repeats: int = 5,
             seed: int = 0, data_dir: Path | str | None = None, cache_dir: Path | str | None = None,
             device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """The digits demo (``--task digits``); return ``{"rows": table rows, "out": folder, ...}``."""
    call = {"epochs": epochs, "train_per_class": train_per_class, "repeats": repeats, "seed": seed,
            "data_dir": data_dir, "cache_dir": cache_dir, "device": device, "progress": progress}
    with Run("demo", "transferlab.demo.digits:run_digits_demo", call, out) as run:
        return _digits_demo(run, **call)


def _digits_demo(run: Run, *, epochs: int, train_per_class: int, repeats: int, seed: int, data_dir, cache_dir,
                 device: str, progress: bool) -> dict[str, Any]:
    start = time.perf_counter()
    out = run.out
    data_root = Path(data_dir) if data_dir is not None else out / "data"
    source = write_digits_folder(data_root / "source", classes=SOURCE_CLASSES, scattered=True)
    target = write_digits_folder(data_root / "target", classes=TARGET_CLASSES, scattered=True)

    weights, source_metrics = pretrain_source(source, out / "pretraining", epochs, seed, device)
    history = [{k: row[k] for k in ("epoch", "train_loss", "train_acc", "val_acc") if k in row}
               for row in History.from_csv(out / "pretraining" / "history.csv").rows]

    rows = []
    common = dict(backbone="digits_cnn", train_per_class=train_per_class, seed=seed, device=device,
                  cache_dir=Path(cache_dir) if cache_dir else None, progress=progress, workers=0)
    variants = (("pretrained on digits 0-4, relu_fc2 (the relu7 analogue)", "pretrained", str(weights), "relu_fc2"),
                ("pretrained on digits 0-4, pool3 (avg-pooled)", "pretrained_pool3", str(weights), "pool3"),
                ("same network, random weights, relu_fc2", "random", "none", "relu_fc2"))
    for label, name, weight_arg, layer in variants:
        options = ExtractionOptions(weights=weight_arg, layers=[layer], pooling="avg", **common)
        metrics = run_linear(target, out / name, options, repeats=repeats)
        accuracies = metrics["repeats"]["accuracies"] if metrics.get("repeats") else [metrics["accuracy"]]
        rows.append(_digits_row(label, accuracies, metrics["feature_size"]))
    pixel = [raw_pixel_accuracy(target, train_per_class, seed + r) for r in range(repeats)]
    rows.append(_digits_row("raw pixels (32x32x3)", [a for a, _ in pixel], pixel[0][1]))

    write_table(rows, out, "demo_table")
    _digits_plot(rows, out / "demo_accuracy.png", train_per_class)
    config = {"command": "demo", "task": "digits", "epochs": epochs, "train_per_class": train_per_class,
              "repeats": repeats,
              "seed": seed, "source_classes": SOURCE_CLASSES, "target_classes": TARGET_CLASSES,
              "pretraining": history, "source_test_accuracy": source_metrics["accuracy"],
              "seconds": time.perf_counter() - start}
    run.record(**config)
    _digits_report(out, rows, history, train_per_class, repeats)
    return {"rows": rows, "out": out, "history": history, "weights": weights, **config}


def _digits_row(method: str, accuracies: list[float], size: int) -> dict[str, Any]:
    return {"features": method, "feature_size": int(size), "accuracy_mean": float(np.mean(accuracies)),
            "accuracy_std": float(np.std(accuracies)), "splits": len(accuracies)}


def _digits_plot(rows, path, train_per_class) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = [r["features"] for r in rows]
    ax.barh(names, [r["accuracy_mean"] for r in rows], xerr=[r["accuracy_std"] for r in rows], capsize=4,
            color=["tab:green", "tab:olive", "tab:orange", "tab:gray"])
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"test accuracy on scattered digits 5-9, LinearSVC(C=1), {train_per_class} training images/class")
    ax.invert_yaxis()
    save_figure(fig, path)


def _digits_report(out: Path, rows, history, train_per_class, repeats) -> None:
    text = ["# transferlab demo --task digits: transfer learning offline, no weights file", "",
            "Source task: scattered digits 0-4 (pretraining `digits_cnn`). Target task: scattered digits 5-9 with "
            f"{train_per_class} training images per class; LinearSVC(C=1) on L2-normalised features; "
            f"mean ± std over {repeats} seeded splits.", "", markdown_table(rows),
            "![accuracy](demo_accuracy.png)", "", "## Pretraining", "", markdown_table(history),
            "Pretraining run (the fine-tuning trainer: history, curves, metrics on held-out source digits): "
            "`pretraining/`. Linear-probe runs (metrics, confusion matrices, saved models): `pretrained/`, "
            "`pretrained_pool3/`, `random/`.", ""]
    (out / "report.md").write_text("\n".join(text))
