"""``study adapt``: source-only vs DANN vs DANN without GRL vs pseudo-labelling, and a GRL-factor sweep.

Reports 001 (section 3.3) and 002 (section 3) compare DANN with and without the gradient reversal layer
(Ganin & Lempitsky, ICML 2015), discuss the GRL factor (question 3) and describe pseudo-labelling
(question 4). This study runs every method for every seed on the same source/target task, then DANN
with every requested maximum GRL factor, and reports mean +- std over seeds as one table and one figure.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..report import save_figure, write_table
from .data import DomainData
from .models import METHODS, build_dann
from .train import AdaptConfig, train_adaptation

SUMMARY_KEYS = ("target_class_acc", "source_class_acc", "domain_acc", "domain_acc_last4", "source_domain_acc", "target_domain_acc")


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    clean = [v for v in values if v is not None]
    if not clean:
        return None, None
    return float(np.mean(clean)), float(np.std(clean, ddof=1)) if len(clean) > 1 else 0.0


def run_adapt_study(data: DomainData, base: AdaptConfig, *, methods: tuple[str, ...] = METHODS,
                    grl_factors: tuple[float, ...] = (), seeds: tuple[int, ...] = (0, 1, 2),
                    backbone: str = "ganin", build_kwargs: dict | None = None, out: Path | str | None = None,
                    device: str = "cpu", on_run: Callable[[dict], None] | None = None) -> dict:
    """Train each method (and DANN at each GRL factor) once per seed; return ``{"runs", "summary"}``.

    With ``out`` it writes ``runs.csv/.md`` (one row per run), ``summary.csv/.md`` (mean and std over
    seeds) and ``study.png`` (target accuracy per method with std bars, and against the GRL factor).
    """
    runs: list[dict] = []
    variants = [(m, None) for m in methods] + [("dann", g) for g in grl_factors]
    for method, factor in variants:
        for seed in seeds:
            config = replace(base, method=method, seed=seed,
                             grl_factor=base.grl_factor if factor is None else factor)
            model, _, _ = build_dann(backbone, len(data.classes), reverse=method != "dann-no-grl", seed=seed,
                                     **(build_kwargs or {}))
            metrics = train_adaptation(model, data, config, device=device).metrics
            row = {"variant": method if factor is None else f"dann grl={factor:g}", "method": method,
                   "grl_factor": config.grl_factor, "seed": seed,
                   **{k: metrics[k] for k in SUMMARY_KEYS}, "seconds": metrics["train_seconds"]}
            runs.append(row)
            if on_run is not None:
                on_run(row)
    summary = []
    for variant in dict.fromkeys(r["variant"] for r in runs):
        rows = [r for r in runs if r["variant"] == variant]
        entry = {"variant": variant, "method": rows[0]["method"], "grl_factor": rows[0]["grl_factor"],
                 "seeds": len(rows)}
        for key in SUMMARY_KEYS:
            entry[f"{key}_mean"], entry[f"{key}_std"] = _mean_std([r[key] for r in rows])
        summary.append(entry)
    if out is not None:
        out = Path(out)
        write_table(runs, out, "runs")
        write_table(summary, out, "summary")
        plot_study(summary, out / "study.png")
    return {"runs": runs, "summary": summary}


def study_adapt(source: str = "digits", target: str = "digits-m", config: AdaptConfig | dict | None = None, *,
                methods: Sequence[str] = METHODS, grl_factors: Sequence[float] = (0.1, 1.0),
                seeds: Sequence[int] = (0, 1, 2), backbone: str = "ganin", weights: str = "none",
                layer: str | None = None, size: int = 28, data_root: Path | str | None = None,
                test_fraction: float = 0.3, device: str = "auto", out: Path | str | None = None,
                on_run: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """``transferlab study adapt`` as a library verb: the domains, the study (:func:`run_adapt_study`) and its run
    folder in one :class:`~transferlab.runs.Run` (``config.json`` records the call: ``transferlab rerun`` replays
    it). ``config`` is the base :class:`AdaptConfig` (a dict as config.json records it); returns
    ``{"runs", "summary", "out"}``."""
    from .._utils import resolve_device
    from ..errors import ConfigError
    from ..runs import Run
    from .run import domain_data

    methods, grl_factors, seeds = tuple(methods), tuple(float(g) for g in grl_factors), tuple(int(s) for s in seeds)
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"unknown method {m!r} in --methods; expected some of {', '.join(METHODS)}")
    if not seeds:
        raise ConfigError("--seeds must name at least one seed, e.g. 0,1,2")
    base = (AdaptConfig(**config) if isinstance(config, dict) else (config or AdaptConfig())).resolved()
    dev = resolve_device(device)
    src, tgt, data, input_size = domain_data(source, target, backbone=backbone, weights=weights, layer=layer,
                                             size=size, data_root=data_root, test_fraction=test_fraction)
    build = {"weights": weights, "layer": layer, "input_size": input_size}
    call = {"source": source, "target": target, "config": asdict(base), "methods": list(methods),
            "grl_factors": list(grl_factors), "seeds": list(seeds), "backbone": backbone, "weights": weights,
            "layer": layer, "size": size, "data_root": data_root, "test_fraction": test_fraction, "device": device}
    with Run("study adapt", "transferlab.adapt.study:study_adapt", call, out, inputs=(src, tgt)) as run:
        run.record(source=str(src), target=str(tgt), methods=list(methods), grl_factors=list(grl_factors),
                   seeds=list(seeds), **asdict(base), backbone=backbone, **build, device=str(dev),
                   resolved_device=str(dev))

        def logged(row: dict) -> None:
            run.log.info("%s seed %d: target acc %s, domain acc %.3f", row["variant"], row["seed"],
                         row["target_class_acc"], row["domain_acc"])
            if on_run is not None:
                on_run(row)

        result = run_adapt_study(data, base, methods=methods, grl_factors=grl_factors, seeds=seeds,
                                 backbone=backbone, build_kwargs=build, out=run.out, device=str(dev), on_run=logged)
    return {**result, "out": run.out}


def plot_study(summary: list[dict], path: Path) -> Path:
    """Bars of target/source accuracy per method (std error bars) and target accuracy vs GRL factor."""
    import matplotlib.pyplot as plt

    methods = [s for s in summary if not s["variant"].startswith("dann grl=")]
    sweep = sorted((s for s in summary if s["variant"].startswith("dann grl=")), key=lambda s: s["grl_factor"])
    panels = 1 + bool(sweep)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.8), squeeze=False)
    ax = axes[0][0]
    xs = np.arange(len(methods))
    for offset, key, label in ((-0.2, "target_class_acc", "target"), (0.2, "source_class_acc", "source"),):
        means = [s[f"{key}_mean"] or 0.0 for s in methods]
        stds = [s[f"{key}_std"] or 0.0 for s in methods]
        ax.bar(xs + offset, means, 0.4, yerr=stds, capsize=3, label=f"{label} class accuracy")
    ax.plot(xs, [s["domain_acc_mean"] for s in methods], "k^", label="domain accuracy")
    ax.set_xticks(xs, [s["variant"] for s in methods], rotation=20)
    ax.set_ylim(0, 1.05)
    ax.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax.legend(fontsize=7)
    ax.set_title("methods (mean ± std over seeds)")
    if sweep:
        ax = axes[0][1]
        factors = [s["grl_factor"] for s in sweep]
        for key in ("target_class_acc", "domain_acc"):
            ax.errorbar(factors, [s[f"{key}_mean"] for s in sweep], yerr=[s[f"{key}_std"] for s in sweep],
                        marker="o", capsize=3, label=key)
        ax.set_xscale("log")
        ax.set_xlabel("maximum GRL factor λ")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=7)
        ax.set_title("GRL factor sweep (DANN)")
    return save_figure(fig, path)
