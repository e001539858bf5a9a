"""``transferlab adapt``, ``transferlab adapt-data`` and ``transferlab study adapt``: domain adaptation (DANN)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import Device, Out, Seed, Weights

Source = Annotated[str, typer.Option("--source", "-s", help="Labelled source: digits | mnist | a folder of class "
                                                            "sub-folders.")]
Target = Annotated[str, typer.Option("--target", "-t", help="Target: digits-m | mnist-m | a folder (class "
                                                            "sub-folders, labels used for evaluation only, or "
                                                            "unlabelled images).")]
AdaptBackbone = Annotated[str, typer.Option("--backbone", "-b", help="ganin (the paper's small digit CNN) or a "
                                                                     "registry name (see `transferlab backbones`).")]
AdaptLayer = Annotated[Optional[str], typer.Option("--layer", "-l", help="Registry backbones: feature layer "
                                                                         "(default: the backbone's default layer).")]
Epochs = Annotated[int, typer.Option("--epochs", min=1, help="Training epochs (pseudo-label: of the base phase).")]
Batch = Annotated[int, typer.Option("--batch-size", min=2, help="Images per domain per step.")]
Optim = Annotated[str, typer.Option("--optimizer", help="sgd (the paper: momentum 0.9, lr/(1+10p)^0.75) or adam.")]
Lr = Annotated[Optional[float], typer.Option("--lr", help="Learning rate (default 0.01 for sgd, 1e-3 for adam).")]
LamSched = Annotated[str, typer.Option("--lambda-schedule", help="paper (2/(1+exp(-10p))-1, times --grl-factor) "
                                                                 "or constant.")]
GrlFactor = Annotated[float, typer.Option("--grl-factor", min=0.0, help="Maximum GRL factor λ (gradient × -λ).")]
PlBase = Annotated[str, typer.Option("--pl-base", help="pseudo-label: base training, source-only or dann.")]
PlRounds = Annotated[int, typer.Option("--pl-rounds", min=1, help="pseudo-label: self-training rounds.")]
PlEpochs = Annotated[int, typer.Option("--pl-epochs", min=1, help="pseudo-label: epochs per round.")]
PlThreshold = Annotated[float, typer.Option("--pl-threshold", help="pseudo-label: softmax confidence to keep a "
                                                                   "target prediction (first round).")]
PlThresholdEnd = Annotated[Optional[float], typer.Option("--pl-threshold-end", help="pseudo-label: threshold of "
                                                                                    "the last round (linear "
                                                                                    "schedule; default: constant).")]
Size = Annotated[int, typer.Option("--size", min=16, help="Named digit datasets: image side in pixels.")]
DataRoot = Annotated[Optional[Path], typer.Option("--data-root", help="Where named datasets are written "
                                                                      "(default: the user cache directory).")]
TestFrac = Annotated[float, typer.Option("--test-fraction", help="Folders without train/test: test fraction.")]
Workers = Annotated[int, typer.Option("--workers", min=0, help="DataLoader worker processes.")]


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("adapt")
    def adapt(source: Source = "digits", target: Target = "digits-m", method: Annotated[str, typer.Option(
                  "--method", "-m", help="source-only | dann | dann-no-grl | pseudo-label")] = "dann",
              backbone: AdaptBackbone = "ganin", weights: Weights = "none", layer: AdaptLayer = None,
              epochs: Epochs = 10, batch_size: Batch = 64, optimizer: Optim = "sgd", lr: Lr = None,
              lambda_schedule: LamSched = "paper", grl_factor: GrlFactor = 1.0, pl_base: PlBase = "source-only",
              pl_rounds: PlRounds = 3, pl_epochs: PlEpochs = 2, pl_threshold: PlThreshold = 0.95,
              pl_threshold_end: PlThresholdEnd = None, size: Size = 28, data_root: DataRoot = None,
              test_fraction: TestFrac = 0.3, seed: Seed = 0, device: Device = "auto", workers: Workers = 0,
              out: Out = None, resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out "
                                                                                     "from its checkpoint.")] = False
              ) -> None:
        """Train on a labelled source and adapt to a target domain (DANN, Ganin & Lempitsky 2015)."""
        from rich.console import Console
        from rich.progress import Progress

        from ..adapt import AdaptConfig
        from ..adapt.run import adapt as adapt_verb

        config = AdaptConfig(method=method, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                             lambda_schedule=lambda_schedule, grl_factor=grl_factor, pl_base=pl_base,
                             pl_rounds=pl_rounds, pl_epochs=pl_epochs, pl_threshold=pl_threshold,
                             pl_threshold_end=pl_threshold_end, seed=seed).resolved()
        console = Console()
        bar = Progress(console=console, transient=True)  # started at the first epoch: errors before it print alone
        task = bar.add_task(f"{method}", total=config.total_epochs)

        def on_epoch(row: dict) -> None:
            bar.start()
            bar.update(task, completed=row["epoch"])
            tgt_acc = row["target_class_acc"]
            console.print(f"epoch {row['epoch']} [{row['phase']}] λ={row['lambda']:.3f} source acc "
                          f"{row['source_class_acc']:.3f} target acc {'-' if tgt_acc is None else f'{tgt_acc:.3f}'}"
                          f" domain acc {row['domain_acc']:.3f}")

        try:
            result = adapt_verb(source, target, config, backbone=backbone, weights=weights, layer=layer, size=size,
                                data_root=data_root, test_fraction=test_fraction, device=device, workers=workers,
                                out=out, resume=resume, on_epoch=on_epoch)
        finally:
            if bar.live.is_started:
                bar.stop()
        m = result.metrics
        tgt_acc = "-" if m["target_class_acc"] is None else f"{m['target_class_acc']:.3f}"
        console.print(f"[bold]{method}[/bold]: target accuracy {tgt_acc}, source accuracy "
                      f"{m['source_class_acc']:.3f}, domain accuracy {m['domain_acc']:.3f} -> {result.out}")

    @app.command("adapt-data")
    def adapt_data(name: Annotated[str, typer.Argument(help="digits | digits-m | mnist | mnist-m")],
                   size: Size = 28, data_root: DataRoot = None,
                   photos: Annotated[Optional[Path], typer.Option("--photos", help="mnist-m: folder of colour "
                                                                                   "photos instead of BSDS500.")] = None
                   ) -> None:
        """Write a named domain-adaptation dataset as train/test class folders and print where."""
        from ..adapt.data import prepare_named

        folder = prepare_named(name, data_root, size, photos)
        typer.echo(str(folder))

    @groups["study"].command("adapt")
    def study_adapt(source: Source = "digits", target: Target = "digits-m",
                    methods: Annotated[str, typer.Option("--methods", help="Comma-separated methods.")] =
                    "source-only,dann,dann-no-grl,pseudo-label",
                    grl_factors: Annotated[str, typer.Option("--grl-factors", help="Comma-separated maximum GRL "
                                                                                   "factors for the DANN sweep "
                                                                                   "('' for none).")] = "0.1,1",
                    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds.")] = "0,1,2",
                    backbone: AdaptBackbone = "ganin", weights: Weights = "none", layer: AdaptLayer = None,
                    epochs: Epochs = 12, batch_size: Batch = 32, optimizer: Optim = "sgd", lr: Lr = 0.03,
                    lambda_schedule: LamSched = "paper", grl_factor: GrlFactor = 0.5, pl_base: PlBase = "dann",
                    pl_rounds: PlRounds = 2, pl_epochs: PlEpochs = 2, pl_threshold: PlThreshold = 0.95,
                    size: Size = 28, data_root: DataRoot = None, test_fraction: TestFrac = 0.3,
                    device: Device = "auto", out: Out = None) -> None:
        """Source-only vs DANN vs DANN without GRL vs pseudo-labelling, and a GRL-factor sweep (mean ± std)."""
        from rich.console import Console

        from ..adapt import AdaptConfig
        from ..adapt.study import study_adapt as run_study
        from ..errors import ConfigError

        def parse(text: str, cast, what: str) -> tuple:
            try:
                return tuple(cast(v.strip()) for v in text.split(",") if v.strip())
            except ValueError as exc:
                raise ConfigError(f"--{what} expects comma-separated values; got {text!r}") from exc

        base = AdaptConfig(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                           lambda_schedule=lambda_schedule, grl_factor=grl_factor, pl_base=pl_base,
                           pl_rounds=pl_rounds, pl_epochs=pl_epochs, pl_threshold=pl_threshold)
        console = Console()
        result = run_study(source, target, base, methods=parse(methods, str, "methods"),
                           grl_factors=parse(grl_factors, float, "grl-factors"), seeds=parse(seeds, int, "seeds"),
                           backbone=backbone, weights=weights, layer=layer, size=size, data_root=data_root,
                           test_fraction=test_fraction, device=device, out=out,
                           on_run=lambda r: console.print(
                               f"{r['variant']} seed {r['seed']}: target acc {r['target_class_acc']}, "
                               f"domain acc {r['domain_acc']:.3f}"))
        for s in result["summary"]:
            mean, std = s["target_class_acc_mean"], s["target_class_acc_std"]
            shown = "-" if mean is None else f"{mean:.3f} ± {std:.3f}"
            console.print(f"[bold]{s['variant']}[/bold]: target accuracy {shown}, domain accuracy "
                          f"{s['domain_acc_mean']:.3f}")
        console.print(f"table and figure -> {result['out']}")
