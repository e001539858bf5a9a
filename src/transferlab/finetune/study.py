"""``study finetune``: report 001's comparison tables (sections 1.6.3-1.6.5) in one run.

For each backbone, every combination of freeze policy (frozen = ``all-but-head`` vs ``none``) and
augmentation preset (``none`` vs ``seed``) is fine-tuned with the same options, and the linear SVM on
the backbone's default features (the assignment's method, :func:`transferlab.classify.run_linear`)
is evaluated on the same train/test split (same ``train_per_class``/``test_fraction``/``seed``; the
SVM trains on all training images, fine-tuning on the same images minus its validation part).
With ``repeats=N`` every combination is trained N times with the training seeds ``seed, seed+1, ...``
(initialisation, batch order, augmentation) on the same images (the splits keep ``seed``), and the table
and figure show the mean ± standard deviation over the repeats with every repeat's value: report 004's
2.21 % vs 7.32 % was two single runs, a difference that repeats show as noise or not.
Each run keeps its own folder under ``OUT/runs``; a study that was interrupted picks up where it
stopped (finished runs are reused, an interrupted run is resumed from its checkpoint) as long as the
options are the same: runs made with other options are refused, never reused under the new ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .._utils import read_json
from ..errors import ConfigError
from ..report.plots import save_figure
from ..report.tables import write_table
from ..runs import Run
from ..training import History
from .config import FinetuneConfig
from .trainer import LAST, finetune


def _slug(name: str) -> str:
    return name.replace("/", "-")


def _label(backbone: str, freeze: str, augment: str, seed: int | None = None) -> str:
    """The run's folder name; ``seed`` only for a study with repeats (``-seed<k>``)."""
    return f"{_slug(backbone)}-{freeze.replace(':', '_')}-{augment}" + ("" if seed is None else f"-seed{seed}")


def _seeds(options: dict[str, Any], repeats: int) -> list[int | None]:
    """Training seeds of the repeats (``[None]``: one run with the options' own seed, folders without a suffix)."""
    if int(repeats) < 1:
        raise ConfigError(f"--repeats must be at least 1; got {repeats}")
    if repeats == 1:
        return [None]
    if options.get("split_seed") is not None:
        raise ConfigError("study finetune --repeats sets split_seed (the splits keep --seed); do not pass it")
    first = int(options.get("seed", 0))
    return list(range(first, first + int(repeats)))


def _run_options(options: dict[str, Any], seed: int | None) -> dict[str, Any]:
    return dict(options) if seed is None else {**options, "seed": seed, "split_seed": int(options.get("seed", 0))}


def _check_earlier_runs(out: Path, wanted: dict[str, FinetuneConfig]) -> None:
    """Refuse to reuse (finished) or resume (interrupted) runs of ``out`` made with other options.

    Each run's ``config.json`` holds the options it was trained with; a finished run would otherwise be
    reused as it is, under the new options' name. Checked for every run before anything is trained.
    """
    changes = []
    for label, cfg in wanted.items():
        run = out / "runs" / label
        if not ((run / "metrics.json").is_file() or (run / LAST).is_file()):
            continue  # nothing to reuse: the run is trained from the start
        saved = read_json(run / "config.json") if (run / "config.json").is_file() else {}
        diff = [f"{k}: saved {saved.get(k)!r}, now {v!r}" for k, v in cfg.fingerprint().items() if saved.get(k) != v]
        if diff:
            changes.append(f"runs/{label} ({', '.join(diff)})")
    if changes:
        raise ConfigError(f"{out} holds study runs made with other options: {'; '.join(changes)}. Rerun with the "
                          "same options to reuse them, or choose another --out for the new options")


def study_finetune(data: Path | str, *, backbones: Sequence[str] = ("vgg16",), weights: str = "imagenet",
                   freezes: Sequence[str] = ("all-but-head", "none"), augments: Sequence[str] = ("none", "seed"),
                   svm: bool = True, out: Path | str | None = None, progress: bool = False,
                   cache_dir: Path | str | None = None, repeats: int = 1, **options: Any) -> dict[str, Any]:
    """Fine-tune every (backbone, freeze, augment) combination, add the SVM row; write table + figures.

    ``options`` are :class:`~transferlab.finetune.FinetuneConfig` fields shared by every run (epochs,
    batch_size, lr, seed, train_per_class...); ``cache_dir`` is the SVM's feature cache; ``repeats`` trains each
    combination that many times (training seeds ``seed ... seed+repeats-1``, the same splits). Returns
    ``{"rows"`` (one per combination: mean, std and every repeat's test accuracy), ``"runs"`` (one per run),
    ``"table", "figure", "curves", "out"}``. The study runs inside one :class:`~transferlab.runs.Run` (log,
    config.json with the call, status.json), so ``transferlab rerun`` replays it.
    """
    if not backbones or not freezes or not augments:
        raise ConfigError("study finetune needs at least one backbone, one --freeze and one --augment value")
    for key in ("backbone", "freeze", "augment", "weights"):
        if key in options:
            raise ConfigError(f"study finetune sets {key!r} per run; use backbones/freezes/augments/weights")
    seeds = _seeds(options, repeats)
    wanted = {_label(b, f, a, k): FinetuneConfig.from_options(backbone=b, weights=weights, freeze=f, augment=a,
                                                              **_run_options(options, k))
              for b in backbones for f in freezes for a in augments for k in seeds}
    if out is not None:
        _check_earlier_runs(Path(out), wanted)  # before the study's config.json is written
    call = {"data": data, "backbones": list(backbones), "weights": weights, "freezes": list(freezes),
            "augments": list(augments), "svm": svm, "progress": progress, "cache_dir": cache_dir,
            **({"repeats": int(repeats)} if repeats != 1 else {}), **options}
    with Run("study finetune", "transferlab.finetune.study:study_finetune", call, out, inputs=(data,)) as study:
        from .._utils import resolve_device

        study.record(data=str(data), backbones=list(backbones), weights=weights, freezes=list(freezes),
                     augments=list(augments), svm=svm, repeats=int(repeats), **options,
                     resolved_device=str(resolve_device(options.get("device", "auto"))))
        return _study(study, data, backbones, weights, freezes, augments, svm, progress, cache_dir, options, seeds)


def _study(study: Run, data, backbones, weights, freezes, augments, svm, progress, cache_dir,
           options, seeds) -> dict[str, Any]:
    out = study.out
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    histories: dict[str, list[dict]] = {}
    for backbone in backbones:
        for freeze in freezes:
            for augment in augments:
                repeats = []
                for seed in seeds:
                    label = _label(backbone, freeze, augment, seed)
                    run = out / "runs" / label
                    if (run / "metrics.json").is_file():
                        metrics = read_json(run / "metrics.json")  # finished earlier: reuse
                        study.log.info("%s: finished earlier, reused", label)
                    else:
                        study.log.info("%s: fine-tuning", label)
                        metrics = finetune(data, backbone=backbone, weights=weights, freeze=freeze, augment=augment,
                                           out=run, resume=(run / LAST).is_file(), progress=progress,
                                           **_run_options(options, seed))
                    hist = History.from_csv(run / "history.csv").rows
                    histories[label] = hist
                    repeats.append({
                        "backbone": backbone, "method": "finetune", "freeze": metrics["freeze"], "augment": augment,
                        "seed": int(options.get("seed", 0)) if seed is None else seed,
                        "best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"],
                        "val_accuracy": metrics["val_accuracy"], "test_accuracy": metrics["accuracy"],
                        "trainable_params": metrics.get("trainable_params"),
                        "train_images_per_s": metrics.get("train_images_per_s"),
                        "train_time_s": sum(r.get("epoch_time_s") or 0.0 for r in hist),
                        "run": str(run.relative_to(out))})
                runs.extend(repeats)
                rows.append(_aggregate(repeats))
        if svm:
            row = _svm_row(data, out, backbone, weights, options, cache_dir, progress)
            runs.append(row)
            rows.append(_aggregate([row]))
    table_csv, table_md = write_table(rows, out, "study_finetune")
    if len(seeds) > 1:
        write_table(runs, out, "study_finetune_runs")
    for row in rows:
        study.log.info("%s %s freeze=%s augment=%s: test accuracy %s", row["backbone"], row["method"],
                       row["freeze"], row["augment"], row["test_accuracy_pm"])
    figure = _bar_figure(rows, out / "study_finetune.png")
    curves = _curves_figure(histories, out / "study_finetune_curves.png")
    return {"rows": rows, "runs": runs, "table": table_md, "csv": table_csv, "figure": figure, "curves": curves,
            "out": out}


def _aggregate(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """One combination's row: the first repeat's columns, test/validation accuracy as the mean over the repeats,
    their (sample) standard deviation, and every repeat's test accuracy."""
    import numpy as np

    row = dict(repeats[0])
    row.pop("seed", None)
    tests = np.array([r["test_accuracy"] for r in repeats], dtype=float)
    vals = [r["val_accuracy"] for r in repeats if r["val_accuracy"] is not None]
    std = float(tests.std(ddof=1)) if len(tests) > 1 else 0.0
    row.update(test_accuracy=float(tests.mean()), test_accuracy_std=std, n_repeats=len(repeats),
               test_accuracies=" ".join(f"{v:.4f}" for v in tests),
               test_accuracy_pm=f"{tests.mean():.4f} ± {std:.4f}" if len(tests) > 1 else f"{tests[0]:.4f}",
               val_accuracy=float(np.mean(vals)) if vals else None,
               train_time_s=(float(np.mean([r["train_time_s"] for r in repeats]))
                             if all(r["train_time_s"] is not None for r in repeats) else None))
    if len(repeats) > 1:
        row["run"] = ", ".join(r["run"] for r in repeats)
    return row


def _svm_row(data: Path | str, out: Path, backbone: str, weights: str, options: dict[str, Any],
             cache_dir: Path | str | None, progress: bool) -> dict[str, Any]:
    from ..classify import run_linear

    run = out / "svm" / _slug(backbone)
    split = {k: options[k] for k in ("train_per_class", "test_fraction", "seed", "batch_size", "device")
             if k in options}
    metrics = run_linear(data, backbone=backbone, weights=weights, classifier="svm", C=1.0, out=run,
                         preprocess=options.get("preprocess", "weights"), cache_dir=cache_dir, progress=progress,
                         **split)
    return {"backbone": backbone, "method": "linear-svm", "freeze": "all (features)", "augment": "none",
            "seed": int(options.get("seed", 0)), "best_epoch": None, "epochs_run": None, "val_accuracy": None,
            "test_accuracy": metrics["accuracy"], "trainable_params": None,
            "train_images_per_s": None, "train_time_s": metrics.get("fit_seconds"),
            "run": str(run.relative_to(out))}


def _bar_figure(rows: list[dict[str, Any]], path: Path) -> Path:
    """Test accuracy per combination: the mean over the repeats, ± one standard deviation, every repeat a dot."""
    import matplotlib.pyplot as plt

    labels = [f"{r['backbone']}\n" + ("SVM" if r["method"] == "linear-svm" else f"{r['freeze']}\naug {r['augment']}")
              for r in rows]
    values = [r["test_accuracy"] for r in rows]
    stds = [r.get("test_accuracy_std") or 0.0 for r in rows]
    repeated = any(r.get("n_repeats", 1) > 1 for r in rows)
    colors = ["tab:gray" if r["method"] == "linear-svm" else
              ("tab:blue" if r["freeze"] == "all-but-head" else "tab:orange") for r in rows]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(rows) + 1), 4.2), layout="constrained")
    bars = ax.bar(range(len(rows)), values, color=colors, yerr=stds if repeated else None, capsize=4,
                  error_kw={"elinewidth": 1})
    for i, r in enumerate(rows):
        points = [float(v) for v in str(r.get("test_accuracies", "")).split()]
        if len(points) > 1:
            ax.scatter([i] * len(points), points, s=12, color="black", zorder=3)
    for i, r in enumerate(rows):  # the value at the foot of its bar: clear of the error bar and the dots
        ax.text(i, 0.015, r.get("test_accuracy_pm") or f"{r['test_accuracy']:.3f}", ha="center", va="bottom",
                fontsize=7, bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8, "lw": 0})
    del bars
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title("fine-tuning: frozen vs trainable, augmentation, backbones (grey: linear SVM)"
                 + (f"\nmean ± std over {max(r.get('n_repeats', 1) for r in rows)} repeats; dots: each repeat"
                    if repeated else ""), fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def _curves_figure(histories: dict[str, list[dict]], path: Path) -> Path:
    """Train/validation loss and accuracy per run (report 001, Figures 1.10-1.11)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, rows in histories.items():
        epochs = [r["epoch"] for r in rows]
        line = axes[0].plot(epochs, [r["val_loss"] for r in rows], marker="o", ms=3, label=f"{label} val")[0]
        axes[0].plot(epochs, [r["train_loss"] for r in rows], ls="--", color=line.get_color(), label=f"{label} train")
        axes[1].plot(epochs, [r["val_acc"] for r in rows], marker="o", ms=3, color=line.get_color(), label=f"{label} val")
        axes[1].plot(epochs, [r["train_acc"] for r in rows], ls="--", color=line.get_color(), label=f"{label} train")
    for ax, name in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6, loc="lower right")
    return save_figure(fig, path)
