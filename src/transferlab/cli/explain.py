"""``transferlab explain saliency|gradcam|adversarial|classviz|perceptual|perceptual-experiment``.

Each command explains a registry backbone (``--backbone/--weights``) or a saved transferlab model
(``--model``) and writes its figures (PNG), ``results.json`` and ``config.json`` into ``--out``.
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
Layers = Annotated[Optional[list[str]], typer.Option(
    "--layer", "-l", help="Layer name (repeat for several); see `transferlab layers B`.")]

explain_app = typer.Typer(no_args_is_help=True, help="See inside a network: saliency, Grad-CAM, adversarial "
                                                     "examples, class visualisation, perceptual loss.")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.add_typer(explain_app, name="explain")
    groups["study"].command("perceptual", help="Report 004: pixel vs feature distances under a 1-pixel "
                                               "translation and Gaussian noise (table + figure).")(
        perceptual_experiment_cmd)


# ------------------------------------------------------------------ shared set-up
def _start(command: str, images: list[Path], out, backbone, weights, model, seed, device, preprocess, config):
    from .._utils import resolve_device, seed_everything
    from ..explain import ExplainModel
    from ..runs import make_run_dir, write_config

    seed_everything(seed)
    dev = resolve_device(device)
    # Single images are read-only inputs but their folder (often the current one) is no dataset: only a
    # saved model folder is protected from being written into.
    out = make_run_dir(out, f"explain-{command}", inputs=(model,) if model is not None else ())
    if model is not None:
        net = ExplainModel.from_saved_model(model, device=dev)
    else:
        net = ExplainModel.from_backbone(backbone, weights, seed=seed, preprocessing_mode=preprocess, device=dev)
    write_config(out, {"command": f"explain {command}", "model": net.name, "backbone": backbone if model is None
                       else None, "weights": weights if model is None else None, "saved_model": model,
                       "images": [str(p) for p in images], "seed": seed, "device": str(dev),
                       "preprocessing": net.preprocessing.as_dict(), **config})
    return net, out


def _finish(out: Path, results: dict, files: list[Path], summary: list[str]) -> None:
    from rich.console import Console

    from .._utils import write_json

    write_json(out / "results.json", results)
    console = Console()
    for line in summary:
        console.print(line)
    console.print(f"wrote {', '.join(p.name for p in files)}, results.json, config.json in [bold]{out}[/bold]")


def _names(images: list[Path]) -> list[str]:
    return [p.name for p in images]


# ------------------------------------------------------------------ commands
@explain_app.command("saliency")
def saliency_cmd(images: Images, target: TargetOpt = None, smoothgrad: Annotated[bool, typer.Option(
                     "--smoothgrad", help="Average the maps of noisy copies (Smilkov et al. 2017).")] = False,
                 samples: Annotated[int, typer.Option("--samples", min=1, help="SmoothGrad noisy copies.")] = 25,
                 noise: Annotated[float, typer.Option("--noise", min=0.0, help="SmoothGrad noise std as a "
                                                      "fraction of the input range.")] = 0.15,
                 backbone: Backbone = "vgg16", weights: Weights = "imagenet", model: ModelDir = None,
                 preprocess: Preprocess = "weights", seed: Seed = 0, device: Device = "auto", out: Out = None) -> None:
    """Saliency maps (Simonyan et al. 2014): |d score / d image|, max over colour channels."""
    from ..explain import SaliencyMap
    from ..explain.figures import heatmap_grid

    net, out = _start("saliency", images, out, backbone, weights, model, seed, device, preprocess,
                      {"target": target, "smoothgrad": smoothgrad, "samples": samples, "noise": noise})
    pixels = net.load_pixels(images)
    exp = SaliencyMap(net, smoothgrad=smoothgrad, samples=samples, noise=noise, seed=seed).attribute(pixels, target)
    rows = exp.rows(net.classes, _names(images))
    titles = [f"{r['image']}\n{r['target']} ({r['target_probability']:.2f})" for r in rows]
    fig = heatmap_grid(pixels, exp.maps, titles, out / "saliency.png", "smoothgrad" if smoothgrad else "saliency")
    _finish(out, {"method": "smoothgrad" if smoothgrad else "saliency", "images": rows}, [fig],
            [f"{r['image']}: {r['target']} p={r['target_probability']:.3f}" for r in rows])


@explain_app.command("gradcam")
def gradcam_cmd(images: Images, target: TargetOpt = None, layer: Annotated[Optional[str], typer.Option(
                    "--layer", "-l", help="Layer to explain (cut point or dotted module path); default: the "
                                          "backbone's last convolutional block.")] = None,
                backbone: Backbone = "vgg16", weights: Weights = "imagenet", model: ModelDir = None,
                preprocess: Preprocess = "weights", seed: Seed = 0, device: Device = "auto", out: Out = None) -> None:
    """Grad-CAM (Selvaraju et al. 2017) heat maps, upsampled and overlaid."""
    from ..explain import GradCAM
    from ..explain.figures import heatmap_grid

    net, out = _start("gradcam", images, out, backbone, weights, model, seed, device, preprocess,
                      {"target": target, "layer": layer})
    cam = GradCAM(net, layer)
    pixels = net.load_pixels(images)
    exp = cam.attribute(pixels, target)
    rows = exp.rows(net.classes, _names(images))
    titles = [f"{r['image']}\n{r['target']} ({r['target_probability']:.2f})" for r in rows]
    fig = heatmap_grid(pixels, exp.maps, titles, out / "gradcam.png", f"Grad-CAM {cam.layer}", cmap="jet")
    _finish(out, {"method": "gradcam", "layer": cam.layer, "map_size": list(cam.last_low_res_.shape[1:]),
                  "images": rows}, [fig],
            [f"{r['image']}: {r['target']} p={r['target_probability']:.3f} (layer {cam.layer})" for r in rows])


@explain_app.command("adversarial")
def adversarial_cmd(images: Images, target: Annotated[Optional[str], typer.Option(
                        "--target", "-t", help="Class to reach (targeted attack); default: untargeted, away "
                                               "from the predicted class.")] = None,
                    method: Annotated[str, typer.Option("--method", help="iterative (the practical's) | fgsm | "
                                                                         "pgd")] = "iterative",
                    eps: Annotated[Optional[float], typer.Option("--eps", help="L-inf budget in [0,1] pixel units "
                                 "(fgsm/pgd default 8/255; iterative: none unless given).")] = None,
                    step_size: Annotated[Optional[float], typer.Option("--step-size", help="iterative: L2 length "
                                 "per step (0.5); pgd: sign step (2.5 eps/steps).")] = None,
                    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="iterative: step budget "
                                                                  "(100); pgd: steps (10).")] = None,
                    backbone: Backbone = "vgg16", weights: Weights = "imagenet", model: ModelDir = None,
                    preprocess: Preprocess = "weights", seed: Seed = 0, device: Device = "auto",
                    out: Out = None) -> None:
    """Adversarial examples: the practical's iterative method, FGSM or PGD, clamped to valid images."""
    from ..explain import make_attack
    from ..explain.figures import adversarial_grid, save_image

    net, out = _start("adversarial", images, out, backbone, weights, model, seed, device, preprocess,
                      {"target": target, "method": method, "eps": eps, "step_size": step_size, "steps": steps})
    attack = make_attack(method, net, eps=eps, step_size=step_size, steps=steps, seed=seed)
    result = attack.attack(net.load_pixels(images), target)
    rows = result.rows(net.classes, _names(images))
    titles = [(f"original: {r['original_class']} ({r['original_confidence']:.2f})",
               f"adversarial: {r['adversarial_class']} ({r['adversarial_confidence']:.2f})") for r in rows]
    files = [adversarial_grid(result.original, result.adversarial, titles, out / "adversarial.png")]
    for i, name in enumerate(_names(images)):
        files.append(save_image(result.adversarial[i], out / f"adversarial_{i:02d}_{Path(name).stem}.png"))
    _finish(out, {"method": method, "eps": getattr(attack, "eps", None), "images": rows}, files,
            [f"{r['image']}: {r['original_class']} ({r['original_confidence']:.2f}) -> {r['adversarial_class']} "
             f"({r['adversarial_confidence']:.2f}) in {r['steps']} steps, Linf={r['linf_255']:.2f}/255, "
             f"L2={r['l2']:.3f}{'' if r['success'] else ' (not fooled)'}" for r in rows])


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
                 blur_sigma: Annotated[float, typer.Option("--blur-sigma", min=0.0)] = 0.5,
                 show_every: Annotated[Optional[int], typer.Option("--show-every", min=1, help="Snapshot period "
                                       "of the strip (default: iterations / 5).")] = None,
                 backbone: Backbone = "vgg16", weights: Weights = "imagenet", model: ModelDir = None,
                 preprocess: Preprocess = "weights", seed: Seed = 0, device: Device = "auto", out: Out = None) -> None:
    """Class visualisation by gradient ascent (Simonyan 2014, Yosinski 2015); final image + strip."""
    from ..explain import ClassVisualizer
    from ..explain.figures import image_strip, save_image, score_curve

    inputs = [init] if init is not None else []
    net, out = _start("classviz", inputs, out, backbone, weights, model, seed, device, preprocess,
                      {"target": target, "init": init, "l2_reg": l2_reg, "lr": lr, "iterations": iterations,
                       "jitter": jitter, "blur_every": blur_every, "blur_sigma": blur_sigma, "show_every": show_every})
    viz = ClassVisualizer(net, l2_reg=l2_reg, lr=lr, iterations=iterations, max_jitter=jitter,
                          blur_every=blur_every, blur_sigma=blur_sigma, show_every=show_every, seed=seed)
    init_pixels = net.load_pixels([init])[0] if init is not None else None
    res = viz.visualize(target, init=init_pixels)
    name = net.classes[res.target]
    files = [save_image(res.image, out / "classviz.png"),
             image_strip([s[1] for s in res.snapshots], [f"iter {s[0]}" for s in res.snapshots], out / "strip.png",
                         f"{name}: lr={lr} l2={l2_reg} blur every {blur_every} (sigma {blur_sigma})"),
             score_curve(res.scores, out / "scores.png", f"score of {name}")]
    _finish(out, {"target": name, "target_index": res.target, "final_score": res.final_score,
                  "final_probability": res.final_probability, "first_score": res.scores[0],
                  "scores": res.scores, "snapshots": [s[0] for s in res.snapshots]}, files,
            [f"{name}: score {res.scores[0]:.3f} -> {res.final_score:.3f} (p={res.final_probability:.3f}) "
             f"after {iterations} iterations"])


@explain_app.command("perceptual")
def perceptual_cmd(image_a: Annotated[Path, typer.Argument(help="First image.")],
                   image_b: Annotated[Path, typer.Argument(help="Second image.")], layer: Layers = None,
                   backbone: Backbone = "vgg16", weights: Weights = "imagenet", model: ModelDir = None,
                   preprocess: Preprocess = "weights", seed: Seed = 0, device: Device = "auto",
                   out: Out = None) -> None:
    """Distance between two images: pixel L1/L2 and feature L1/L2 at named layers (perceptual loss)."""
    from ..explain import PerceptualDistance
    from ..explain.figures import image_strip

    net, out = _start("perceptual", [image_a, image_b], out, backbone, weights, model, seed, device, preprocess,
                      {"layers": layer})
    metric = PerceptualDistance(net, layer)
    a, b = net.load_pixels([image_a, image_b])
    distances = metric.compare(a, b)
    fig = image_strip([a, b], [image_a.name, image_b.name], out / "pair.png")
    _finish(out, {"layers": metric.layers, "distances": distances}, [fig],
            [f"{k}: {v:.6g}" for k, v in distances.items()])


@explain_app.command("perceptual-experiment")
def perceptual_experiment_cmd(image: Annotated[Path, typer.Argument(help="The image to translate and noise.")],
                              layer: Layers = None,
                              shift: Annotated[int, typer.Option("--shift", help="Translation in pixels "
                                                                                 "(to the left).")] = 1,
                              sigma: Annotated[float, typer.Option("--sigma", min=0.0, help="Gaussian noise std "
                                                                   "in [0,1] pixel units.")] = 0.1,
                              backbone: Backbone = "vgg16", weights: Weights = "imagenet", model: ModelDir = None,
                              preprocess: Preprocess = "weights", seed: Seed = 0, device: Device = "auto",
                              out: Out = None) -> None:
    """Report 004: image vs its 1-pixel translation and vs a noisy copy, in pixels and at several layers."""
    from ..explain import perceptual_experiment
    from ..explain.figures import image_strip
    from ..report import write_table

    net, out = _start("perceptual-experiment", [image], out, backbone, weights, model, seed, device, preprocess,
                      {"layers": layer, "shift": shift, "sigma": sigma})
    rows, images = perceptual_experiment(net, net.load_pixels([image]), layer, shift=shift, sigma=sigma, seed=seed)
    csv_path, md_path = write_table(rows, out, "perceptual")
    fig = image_strip(list(images.values()), list(images), out / "images.png",
                      f"shift {shift}px, noise sigma {sigma}")
    _finish(out, {"shift": shift, "sigma": sigma, "rows": rows}, [csv_path, md_path, fig],
            [f"{r['measure']} {r['space']}: translation/noise = {r['translation/noise']:.3g}" for r in rows])
