"""``transferlab explain saliency|gradcam|adversarial|classviz|perceptual|perceptual-experiment``.

Each command explains a registry backbone (``--backbone/--weights``) or a saved transferlab model
(``--model``) and writes its figures (PNG), ``results.json`` and ``config.json`` into ``--out``. The
commands only parse options: each calls one library verb of :mod:`transferlab.explain.run`, which owns
the run folder (``transferlab rerun`` replays it), and prints its summary.
``transferlab study perceptual`` is the same as ``explain perceptual-experiment``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import Backbone, Device, Out, Preprocess, Seed, Weights

ModelDir = Annotated[Optional[Path], typer.Option(
    "--model", "-m", help="A saved transferlab model folder: explain it (its classes) instead of --backbone.")]
TargetOpt = Annotated[Optional[str], typer.Option(
    "--target", "-t", help="Class name or index to explain (default: each image's predicted class).")]
Images = Annotated[list[Path], typer.Argument(help="Image file(s); several images make one figure.")]
Localize = Annotated[Optional[float], typer.Option(
    "--localize", help="Weak localisation: keep the map's top PCT % pixels, largest connected region -> mask + "
                       "box (localization.png, results.json).", metavar="PCT")]
Smooth = Annotated[Optional[float], typer.Option(
    "--smooth", min=0.0, help="Gaussian sigma (pixels) applied to the map before --localize (saliency default: "
                              "2 % of the side; Grad-CAM: 0).")]
Layers = Annotated[Optional[list[str]], typer.Option(
    "--layer", "-l", help="Layer name (repeat for several); see `transferlab layers B`.")]

explain_app = typer.Typer(no_args_is_help=True, help="See inside a network: saliency, Grad-CAM, adversarial "
                                                     "examples, class visualisation, perceptual loss.")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.add_typer(explain_app, name="explain")
    groups["study"].command("perceptual", help="Report 004: pixel vs feature distances under a 1-pixel "
                                               "translation and Gaussian noise (table + figure).")(
        perceptual_experiment_cmd)
    groups["study"].command("classviz", help="Class visualisation over learning rate x iterations x L2 weight x "
                                             "blur interval (report 001 Figs. 2.7-2.15): grid + table, resumable.")(
        classviz_study_cmd)


# ------------------------------------------------------------------ shared
def _options(backbone, weights, model, preprocess, seed, device):
    from ..explain.run import ExplainOptions

    return ExplainOptions(backbone=backbone, weights=weights, model=None if model is None else str(model),
                          preprocess=preprocess, seed=seed, device=device)


def _report(results, summary: list[str]) -> None:
    from rich.console import Console

    console = Console()
    for line in summary:
        console.print(line)
    console.print(f"wrote {', '.join(p.name for p in results.files)}, results.json, config.json in "
                  f"[bold]{results.out}[/bold]")


# ------------------------------------------------------------------ commands
@explain_app.command("saliency")
def saliency_cmd(images: Images, target: TargetOpt = None, smoothgrad: Annotated[bool, typer.Option(
                     "--smoothgrad", help="Average the maps of noisy copies (Smilkov et al. 2017).")] = False,
                 samples: Annotated[int, typer.Option("--samples", min=1, help="SmoothGrad noisy copies.")] = 25,
                 noise: Annotated[float, typer.Option("--noise", min=0.0, help="SmoothGrad noise std as a "
                                                      "fraction of the input range.")] = 0.15,
                 localize: Localize = None, smooth: Smooth = None,
                 backbone: Backbone = "vgg16", weights: Weights = "imagenet", model: ModelDir = None,
                 preprocess: Preprocess = "weights", seed: Seed = 0, device: Device = "auto", out: Out = None) -> None:
    """Saliency maps (Simonyan et al. 2014): |d score / d image|, max over colour channels."""
    from ..explain.run import run_saliency

    results = run_saliency(images, target, smoothgrad=smoothgrad, samples=samples, noise=noise, localize=localize,
                           smooth=smooth, options=_options(backbone, weights, model, preprocess, seed, device),
                           out=out)
    _report(results, [f"{r['image']}: {r['target']} p={r['target_probability']:.3f}{_box(r)}"
                      for r in results["images"]])


def _box(row: dict) -> str:
    loc = row.get("localization")
    if loc is None:
        return ""
    return f", box {tuple(loc['box'])} (x0, y0, x1, y1), mask {100 * loc['mask_area']:.1f} % of the image"


@explain_app.command("gradcam")
def gradcam_cmd(images: Images, target: TargetOpt = None, layer: Annotated[Optional[str], typer.Option(
                    "--layer", "-l", help="Layer to explain (cut point or dotted module path); default: the "
                                          "backbone's last convolutional block.")] = None,
                localize: Localize = None, smooth: Smooth = None,
                backbone: Backbone = "vgg16", weights: Weights = "imagenet", model: ModelDir = None,
                preprocess: Preprocess = "weights", seed: Seed = 0, device: Device = "auto", out: Out = None) -> None:
    """Grad-CAM (Selvaraju et al. 2017) heat maps, upsampled and overlaid."""
    from ..explain.run import run_gradcam

    results = run_gradcam(images, target, layer=layer, localize=localize, smooth=smooth,
                          options=_options(backbone, weights, model, preprocess, seed, device), out=out)
    _report(results, [f"{r['image']}: {r['target']} p={r['target_probability']:.3f} (layer {results['layer']})"
                      f"{_box(r)}" for r in results["images"]])


@explain_app.command("adversarial")
def adversarial_cmd(images: Images, target: Annotated[Optional[str], typer.Option(
                        "--target", "-t", help="Class to reach (targeted attack); default: untargeted, away "
                                               "from the predicted class.")] = None,
                    method: Annotated[str, typer.Option("--method", help="iterative (the practical's) | fgsm | "
                                                                         "pgd | cw (Carlini-Wagner L2)")] = "iterative",
                    eps: Annotated[Optional[float], typer.Option("--eps", help="L-inf budget in [0,1] pixel units "
                                 "(fgsm/pgd default 8/255; iterative: none unless given).")] = None,
                    step_size: Annotated[Optional[float], typer.Option("--step-size", help="iterative: L2 length "
                                 "per step (0.5); pgd: sign step (2.5 eps/steps).")] = None,
                    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="iterative: step budget "
                                                                  "(100); pgd: steps (10); cw: Adam steps per c "
                                                                  "(100).")] = None,
                    min_eps: Annotated[bool, typer.Option("--min-eps", help="fgsm/pgd: per image, search the "
                                      "smallest L-inf eps that fools (binary search up to --max-eps).")] = False,
                    max_eps: Annotated[float, typer.Option("--max-eps", help="Upper end of the --min-eps search "
                                                                             "([0,1] units).")] = 16 / 255,
                    tol: Annotated[float, typer.Option("--tol", help="Resolution of the --min-eps search ([0,1] "
                                                                     "units).")] = 0.05 / 255,
                    backbone: Backbone = "vgg16", weights: Weights = "imagenet", model: ModelDir = None,
                    preprocess: Preprocess = "weights", seed: Seed = 0, device: Device = "auto",
                    out: Out = None) -> None:
    """Adversarial examples: the practical's iterative method, FGSM, PGD or Carlini-Wagner L2, clamped to valid
    images; the perturbation against the saliency map; optionally the smallest fooling eps (--min-eps)."""
    from ..explain.run import run_adversarial

    results = run_adversarial(images, target, method=method, eps=eps, step_size=step_size, steps=steps,
                              min_eps=min_eps, max_eps=max_eps, tol=tol,
                              options=_options(backbone, weights, model, preprocess, seed, device), out=out)
    _report(results, [f"{r['image']}: {r['original_class']} ({r['original_confidence']:.2f}) -> "
                      f"{r['adversarial_class']} ({r['adversarial_confidence']:.2f}) in {r['steps']} steps, "
                      f"Linf={r['linf_255']:.3g}/255, L2={r['l2']:.3g}{'' if r['success'] else ' (not fooled)'}"
                      + (f", smallest fooling eps {_eps255(r['min_eps_255'])}" if results["min_eps"] else "")
                      + f"; perturbation vs saliency: Spearman {r['saliency_spearman']:.2f}"
                      for r in results["images"]])


def _eps255(value) -> str:
    return "not found" if value is None else f"{value:.3g}/255"


@explain_app.command("classviz")
def classviz_cmd(target: TargetOpt = None,
                 init: Annotated[Optional[Path], typer.Option("--init", help="Start from this image instead "
                                                                           "of random noise.")] = None,
                 l2_reg: Annotated[float, typer.Option("--l2-reg", min=0.0, help="L2 regularisation weight.")] = 1e-3,
                 lr: Annotated[float, typer.Option("--lr", help="Learning rate (step along the normalised "
                                                               "gradient).")] = 5.0,
                 iterations: Annotated[int, typer.Option("--iterations", min=1)] = 200,
                 jitter: Annotated[Optional[int], typer.Option("--jitter", min=0, help="Max random roll in "
                                   "pixels (default 16 at 224 px, scaled).")] = None,
                 blur_every: Annotated[int, typer.Option("--blur-every", min=0, help="Blur every N iterations "
                                                                                   "(0: never).")] = 10,
                 blur_sigma: Annotated[float, typer.Option("--blur-sigma", min=0.0, help="Gaussian blur sigma "
                                                           "(pixels), applied every --blur-every steps.")] = 0.5,
                 show_every: Annotated[Optional[int], typer.Option("--show-every", min=1, help="Snapshot period "
                                       "of the strip (default: iterations / 5).")] = None,
                 backbone: Backbone = "vgg16", weights: Weights = "imagenet", model: ModelDir = None,
                 preprocess: Preprocess = "weights", seed: Seed = 0, device: Device = "auto", out: Out = None) -> None:
    """Class visualisation by gradient ascent (Simonyan 2014, Yosinski 2015); final image + strip."""
    from ..explain.run import run_classviz

    results = run_classviz(target, init=init, l2_reg=l2_reg, lr=lr, iterations=iterations, jitter=jitter,
                           blur_every=blur_every, blur_sigma=blur_sigma, show_every=show_every,
                           options=_options(backbone, weights, model, preprocess, seed, device), out=out)
    _report(results, [f"{results['target']}: score {results['first_score']:.3f} -> {results['final_score']:.3f} "
                      f"(p={results['final_probability']:.3f}) after {iterations} iterations"])


@explain_app.command("perceptual")
def perceptual_cmd(image_a: Annotated[Path, typer.Argument(help="First image.")],
                   image_b: Annotated[Path, typer.Argument(help="Second image.")], layer: Layers = None,
                   backbone: Backbone = "vgg16", weights: Weights = "imagenet", model: ModelDir = None,
                   preprocess: Preprocess = "weights", seed: Seed = 0, device: Device = "auto",
                   out: Out = None) -> None:
    """Distance between two images: pixel L1/L2 and feature L1/L2 at named layers (perceptual loss)."""
    from ..explain.run import run_perceptual

    results = run_perceptual(image_a, image_b, layer, options=_options(backbone, weights, model, preprocess, seed,
                                                                       device), out=out)
    _report(results, [f"{k}: {v:.6g}" for k, v in results["distances"].items()])


@explain_app.command("perceptual-experiment")
def perceptual_experiment_cmd(image: Annotated[Path, typer.Argument(help="The image to translate and noise.")],
                              layer: Layers = None,
                              shift: Annotated[int, typer.Option("--shift", help="Translation in pixels "
                                                                                 "(to the left).")] = 1,
                              sigma: Annotated[float, typer.Option("--sigma", min=0.0, help="Gaussian noise std "
                                                                   "in [0,1] pixel units.")] = 0.1,
                              full_resolution: Annotated[bool, typer.Option("--full-resolution", help="Also run it "
                                  "on the photo at its own size (no resize/crop), pixel distances in 0-255 units "
                                  "(report 004).")] = False,
                              backbone: Backbone = "vgg16", weights: Weights = "imagenet", model: ModelDir = None,
                              preprocess: Preprocess = "weights", seed: Seed = 0, device: Device = "auto",
                              out: Out = None) -> None:
    """Report 004: image vs its 1-pixel translation and vs a noisy copy, in pixels and at several layers."""
    from ..explain.run import run_perceptual_experiment

    results = run_perceptual_experiment(image, layer, shift=shift, sigma=sigma, full_resolution=full_resolution,
                                        options=_options(backbone, weights, model, preprocess, seed, device), out=out)
    _report(results, [f"{r['measure']} {r['space']}: translation/noise = {r['translation/noise']:.3g}"
                      for r in results["rows"]])


def _list(value: str, kind, option: str) -> list:
    from ..errors import ConfigError

    try:
        items = [kind(v) for v in value.split(",") if v.strip()]
    except ValueError:
        items = []
    if not items:
        raise ConfigError(f"{option} expects comma-separated numbers (e.g. {option} 1,5,9); got {value!r}")
    return items


def classviz_study_cmd(
    target: Annotated[str, typer.Option("--target", "-t", help="Class name or index to visualise.")],
    lr: Annotated[str, typer.Option("--lr", help="Learning rates, comma-separated.")] = "1,5,9",
    iterations: Annotated[str, typer.Option("--iterations", help="Iteration counts, comma-separated (one "
                                            "trajectory per setting: the longest run, checkpointed).")] = "100,200",
    l2_reg: Annotated[str, typer.Option("--l2-reg", help="L2 regularisation weights, comma-separated.")] = "1e-3",
    blur_every: Annotated[str, typer.Option("--blur-every", help="Blur intervals, comma-separated (0: never).")
                          ] = "10",
    init: Annotated[Optional[list[Path]], typer.Option("--init", help="Also start from this image (repeat for "
                                                       "several): rows of the same grid.")] = None,
    noise: Annotated[bool, typer.Option("--noise/--no-noise", help="Keep the rows starting from random noise.")
                     ] = True,
    snapshots: Annotated[Optional[str], typer.Option("--snapshots", help="Also keep every setting's image at these "
                                                     "iterations (snapshots.png), e.g. 10,50,100.")] = None,
    blur_sigma: Annotated[float, typer.Option("--blur-sigma", min=0.0, help="Gaussian blur sigma (pixels), applied "
                                                                             "every --blur-every steps.")] = 0.5,
    jitter: Annotated[Optional[int], typer.Option("--jitter", min=0, help="Max random roll in pixels (default 16 "
                                                  "at 224 px, scaled).")] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Discard finished cells in --out instead of "
                                                            "resuming.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    backbone: Backbone = "vgg16", weights: Weights = "imagenet", model: ModelDir = None,
    preprocess: Preprocess = "weights", seed: Seed = 0, device: Device = "auto", out: Out = None) -> None:
    """Class visualisation grid (report 001 Figs. 2.7-2.15, report 002's lr x iterations grid); run again with --out
    to resume."""
    from ..errors import ConfigError
    from ..studies.classviz import NOISE, study_classviz

    inits = ([NOISE] if noise else []) + [str(p) for p in init or []]
    if not inits:
        raise ConfigError("--no-noise leaves no start for the grid; give --init IMAGE (or drop --no-noise)")
    result = study_classviz(target, lrs=_list(lr, float, "--lr"), iterations=_list(iterations, int, "--iterations"),
                            l2_regs=_list(l2_reg, float, "--l2-reg"),
                            blur_every=_list(blur_every, int, "--blur-every"), inits=inits,
                            snapshots=_list(snapshots, int, "--snapshots") if snapshots else [],
                            blur_sigma=blur_sigma, jitter=jitter,
                            options=_options(backbone, weights, model, preprocess, seed, device), out=out,
                            restart=restart, progress=not quiet)
    from rich.console import Console

    console = Console()
    for row in result.rows:
        console.print(f"{row['key']}: score {row['first_score']:.3g} -> {row['final_score']:.3g} "
                      f"(p={row['final_probability']:.3f})", markup=False, highlight=False)
    console.print(f"{len(result.rows)} cells ({result.n_evaluated} run now, "
                  f"{len(result.rows) - result.n_evaluated} resumed); best {result.summary['best_cell']}")
    console.print(f"-> {result.table[0]}, {', '.join(str(p) for p in result.figures)}", markup=False)
