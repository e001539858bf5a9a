"""``transferlab study layers|backbones|C|pca|heads``: the feature + classifier studies (issue 4).

Each command gathers its shared options once (:class:`StudyOptions`) and calls the one study verb
(:func:`transferlab.studies.runner.study`); run again with the same ``--out`` to resume an interrupted study.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import options as opt

console = Console()

Data = Annotated[Path, typer.Argument(help="Image folder: DATA/<class>/... or DATA/train|test/<class>/...")]
StudyPooling = Annotated[str, typer.Option("--pooling", help="Pooling of spatial layers: avg (default, bounded "
                                                             "memory)|max|spp|none; vectors are never pooled.")]
Classifier = Annotated[str, typer.Option("--classifier", help="svm (LinearSVC) or logreg.")]
CValue = Annotated[str, typer.Option("--C", help="Regularisation C, or 'auto' (k-fold CV on the training split).")]
CvFolds = Annotated[int, typer.Option("--cv-folds", min=2, help="Folds of the CV on the training split.")]
NoCv = Annotated[bool, typer.Option("--no-cv", help="Skip the CV accuracy on train (faster).")]
Restart = Annotated[bool, typer.Option("--restart", help="Discard finished rows in --out instead of resuming.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def _numbers(value: str | None, kind, option: str) -> list | None:
    from ..errors import ConfigError

    items = _csv(value)
    if items is None:
        return None
    try:
        return [kind(v) for v in items]
    except ValueError:
        raise ConfigError(f"{option} expects comma-separated numbers; got {value!r}") from None


@dataclass
class StudyOptions:
    """The options every feature study shares, declared once: built from a command's parameters
    (:meth:`of`), turned into the library's :class:`ExtractionOptions` and :class:`LinearOptions`."""

    weights: str
    train_per_class: int
    test_fraction: float | None
    seed: int
    preprocess: str
    pooling: str
    l2: bool
    batch_size: int | None
    workers: int | None
    device: str
    precision: str
    cache_dir: Path | None
    no_cache: bool
    quiet: bool
    out: Path | None
    restart: bool
    backbone: str = "vgg16"
    layer: str | None = None
    classifier: str = "svm"
    C: str = "1.0"
    cv_folds: int = 5
    grid: list[float] | None = None
    engine: str = "torch"
    solver: str = "auto"
    max_feature_gb: float = opt.DEFAULT_MAX_FEATURE_GB

    @classmethod
    def of(cls, params: dict, **fixed) -> "StudyOptions":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in {**params, **fixed}.items() if k in names})

    def extraction(self):
        from ..pipeline import ExtractionOptions

        return ExtractionOptions(
            backbone=self.backbone, weights=self.weights, layers=[self.layer] if self.layer else [],
            train_per_class=self.train_per_class, test_fraction=self.test_fraction, seed=self.seed,
            preprocess=self.preprocess, pooling=self.pooling, l2=self.l2, batch_size=self.batch_size,
            workers=self.workers, device=self.device, precision=self.precision, cache_dir=self.cache_dir,
            use_cache=not self.no_cache, progress=not self.quiet, engine=self.engine,
            max_feature_gb=self.max_feature_gb)

    def linear(self):
        from ..classify import DEFAULT_C_GRID, LinearOptions
        from ..classify.run import parse_C

        c_grid = tuple(self.grid) if self.grid else DEFAULT_C_GRID
        return LinearOptions(self.classifier, parse_C(self.C), None, self.cv_folds, c_grid, solver=self.solver)

    def run(self, kind: str, data: Path, columns: list[str], **study_options) -> None:
        """Call the study verb with these options and print its table."""
        from ..studies.runner import study

        result = study(kind, data, self.extraction(), self.linear(), study_options, out=self.out,
                       restart=self.restart, progress=not self.quiet)
        if result is not None:  # None on a torchrun rank other than 0
            _print(result, kind, columns)


def _print(result, name: str, columns: list[str]) -> None:
    table = Table(title=f"study {name}: {len(result.rows)} conditions "
                        f"({result.n_evaluated} run now, {len(result.rows) - result.n_evaluated} resumed)")
    shown = [c for c in columns if any(c in r for r in result.rows)]
    for column in shown:
        table.add_column(column)
    for row in result.rows:
        table.add_row(*[_fmt(row.get(c)) for c in shown])
    console.print(table)
    summary = {k: v for k, v in result.summary.items() if not isinstance(v, (dict, list))}
    if summary:
        console.print(", ".join(f"{k} = {_fmt(v)}" for k, v in summary.items()))
    console.print(f"-> {result.table[0]}, {', '.join(str(p) for p in result.figures)}")


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def study_layers(
    data: Data,
    backbone: opt.Backbone = "vgg16",
    weights: opt.Weights = "imagenet",
    layers: Annotated[Optional[str], typer.Option("--layers", help="Comma-separated cut points (default: every "
                                                  "relu/pool cut point of the backbone, in depth order).")] = None,
    heatmap: Annotated[Optional[bool], typer.Option("--heatmap/--no-heatmap", help="Conv cut x classifier cut "
                                                    "heatmap (report 001 Fig. 1.7); default: when the network "
                                                    "allows it (VGG, AlexNet, digits_cnn).")] = None,
    classifier: Classifier = "svm", C: CValue = "1.0", cv_folds: CvFolds = 5, no_cv: NoCv = False,
    out: opt.Out = None, restart: Restart = False, quiet: Quiet = False,
    train_per_class: opt.TrainPerClass = 100, test_fraction: opt.TestFraction = None, seed: opt.Seed = 0,
    preprocess: opt.Preprocess = "weights", pooling: StudyPooling = "avg", l2: opt.L2 = True,
    batch_size: opt.ExtractionBatchSize = None, workers: opt.Workers = None, device: opt.Device = "auto",
    precision: opt.Precision = "fp32", cache_dir: opt.CacheDir = None, no_cache: opt.NoCache = False,
    engine: opt.Engine = "torch",
    solver: opt.Solver = "auto", max_feature_gb: opt.MaxFeatureGb = opt.DEFAULT_MAX_FEATURE_GB,
) -> None:
    """SVM test and CV accuracy per cut point (depth curve), and the VGG conv x classifier heatmap."""
    StudyOptions.of(locals()).run("layers", data, ["layer", "feature_size", "test_acc", "cv_acc", "extract_s",
                                                   "fit_s", "max_rss_mb"],
                                  layers=_csv(layers), heatmap=heatmap, cv=not no_cv)


def study_backbones(
    data: Data,
    backbones: Annotated[Optional[str], typer.Option("--backbones", help="Comma-separated registry names "
                                                     "(default: alexnet,vgg16,vgg19,resnet50,resnet152,"
                                                     "inception_v3).")] = None,
    weights: opt.Weights = "imagenet",
    classifier: Classifier = "svm", C: CValue = "1.0", cv_folds: CvFolds = 5, no_cv: NoCv = False,
    out: opt.Out = None, restart: Restart = False, quiet: Quiet = False,
    train_per_class: opt.TrainPerClass = 100, test_fraction: opt.TestFraction = None, seed: opt.Seed = 0,
    preprocess: opt.Preprocess = "weights", pooling: StudyPooling = "avg", l2: opt.L2 = True,
    batch_size: opt.ExtractionBatchSize = None, workers: opt.Workers = None, device: opt.Device = "auto",
    precision: opt.Precision = "fp32", cache_dir: opt.CacheDir = None, no_cache: opt.NoCache = False,
    engine: opt.Engine = "torch",
    solver: opt.Solver = "auto", max_feature_gb: opt.MaxFeatureGb = opt.DEFAULT_MAX_FEATURE_GB,
) -> None:
    """Each backbone at its own feature layer with its own preprocessing: accuracy, size, speed, fit time."""
    StudyOptions.of(locals(), backbone="vgg16").run(
        "backbones", data, ["backbone", "layer", "feature_size", "test_acc", "cv_acc", "extract_img_per_s", "fit_s"],
        backbones=_csv(backbones), cv=not no_cv)


def study_C(
    data: Data,
    backbone: opt.Backbone = "vgg16", weights: opt.Weights = "imagenet", layer: opt.Layer = None,
    grid: Annotated[Optional[str], typer.Option("--grid", help="Comma-separated values of C "
                                                "(default: 1e-4 ... 1e4, one per decade).")] = None,
    classifier: Classifier = "svm", cv_folds: CvFolds = 5,
    out: opt.Out = None, restart: Restart = False, quiet: Quiet = False,
    train_per_class: opt.TrainPerClass = 100, test_fraction: opt.TestFraction = None, seed: opt.Seed = 0,
    preprocess: opt.Preprocess = "weights", pooling: StudyPooling = "avg", l2: opt.L2 = True,
    batch_size: opt.ExtractionBatchSize = None, workers: opt.Workers = None, device: opt.Device = "auto",
    precision: opt.Precision = "fp32", cache_dir: opt.CacheDir = None, no_cache: opt.NoCache = False,
    engine: opt.Engine = "torch",
    solver: opt.Solver = "auto", max_feature_gb: opt.MaxFeatureGb = opt.DEFAULT_MAX_FEATURE_GB,
) -> None:
    """Mean ± std k-fold CV accuracy (train only) and fit time per C; test accuracy of the chosen C and C=1."""
    StudyOptions.of(locals(), C="1.0", grid=_numbers(grid, float, "--grid")).run(
        "C", data, ["C", "cv_acc", "cv_std", "fit_s"])


def study_pca(
    data: Data,
    backbone: opt.Backbone = "vgg16", weights: opt.Weights = "imagenet", layer: opt.Layer = None,
    dims: Annotated[Optional[str], typer.Option("--dims", help="Comma-separated PCA sizes (default: powers of "
                                                "2 below min(train images, feature size)); no-PCA is always added.")
                    ] = None,
    classifier: Classifier = "svm", C: CValue = "1.0", cv_folds: CvFolds = 5, no_cv: NoCv = False,
    out: opt.Out = None, restart: Restart = False, quiet: Quiet = False,
    train_per_class: opt.TrainPerClass = 100, test_fraction: opt.TestFraction = None, seed: opt.Seed = 0,
    preprocess: opt.Preprocess = "weights", pooling: StudyPooling = "avg", l2: opt.L2 = True,
    batch_size: opt.ExtractionBatchSize = None, workers: opt.Workers = None, device: opt.Device = "auto",
    precision: opt.Precision = "fp32", cache_dir: opt.CacheDir = None, no_cache: opt.NoCache = False,
    engine: opt.Engine = "torch",
    solver: opt.Solver = "auto", max_feature_gb: opt.MaxFeatureGb = opt.DEFAULT_MAX_FEATURE_GB,
) -> None:
    """PCA dimension sweep: accuracy, variance kept, fit and predict time per number of components."""
    StudyOptions.of(locals()).run("pca", data, ["pca", "variance_kept", "test_acc", "cv_acc", "fit_s", "predict_s"],
                                  dims=_numbers(dims, int, "--dims"), cv=not no_cv)


def study_heads(
    data: Data,
    backbone: opt.Backbone = "vgg16", weights: opt.Weights = "imagenet", layer: opt.Layer = None,
    heads: Annotated[Optional[str], typer.Option("--heads", help="Comma-separated: svm,logreg,mlp "
                                                 "(default: all three).")] = None,
    hidden: Annotated[str, typer.Option("--hidden", help="MLP hidden layer widths, comma-separated.")] = "256",
    alpha: Annotated[float, typer.Option("--alpha", help="MLP L2 penalty.")] = 1e-4,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="MLP maximum epochs.")] = 300,
    lr: Annotated[float, typer.Option("--lr", help="MLP Adam learning rate.")] = 1e-2,
    svm_grid: Annotated[Optional[str], typer.Option("--svm-grid", help="Also one linear-SVM bar per C (fitted by "
                                                    "--solver), comma-separated (report 002's SVM-over-C bars; test "
                                                    "accuracy for illustration only).")] = None,
    C: CValue = "1.0", cv_folds: CvFolds = 5, no_cv: NoCv = False,
    out: opt.Out = None, restart: Restart = False, quiet: Quiet = False,
    train_per_class: opt.TrainPerClass = 100, test_fraction: opt.TestFraction = None, seed: opt.Seed = 0,
    preprocess: opt.Preprocess = "weights", pooling: StudyPooling = "avg", l2: opt.L2 = True,
    batch_size: opt.ExtractionBatchSize = None, workers: opt.Workers = None, device: opt.Device = "auto",
    precision: opt.Precision = "fp32", cache_dir: opt.CacheDir = None, no_cache: opt.NoCache = False,
    engine: opt.Engine = "torch",
    solver: opt.Solver = "auto", max_feature_gb: opt.MaxFeatureGb = opt.DEFAULT_MAX_FEATURE_GB,
) -> None:
    """Linear SVM vs logistic regression vs a small MLP on the same cached features (report 002)."""
    StudyOptions.of(locals(), classifier="svm").run(
        "heads", data, ["head", "params", "test_acc", "cv_acc", "fit_s", "predict_s"], heads=_csv(heads),
        hidden=list(_numbers(hidden, int, "--hidden") or ()), alpha=alpha, max_iter=epochs, learning_rate=lr,
        cv=not no_cv, svm_grid=list(_numbers(svm_grid, float, "--svm-grid") or ()))


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    study = groups["study"]
    study.command("layers")(study_layers)
    study.command("backbones")(study_backbones)
    study.command("C")(study_C)
    study.command("pca")(study_pca)
    study.command("heads")(study_heads)
