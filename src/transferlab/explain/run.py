"""``transferlab explain ...`` as library verbs: one call builds the model, explains, writes the run folder.

Each verb (:func:`run_saliency`, :func:`run_gradcam`, :func:`run_adversarial`, :func:`run_classviz`,
:func:`run_perceptual`, :func:`run_perceptual_experiment`) opens one :class:`~transferlab.runs.Run`
(``config.json`` with the call, library versions and resolved device; ``log.txt`` from the first line;
``status.json`` at the end), builds the :class:`ExplainModel` named by :class:`ExplainOptions` (a registry
backbone or a saved model), runs the method, writes its figures and ``results.json`` and returns the results
as an :class:`ExplainResults` (a dict, with ``.out`` and ``.files``). ``transferlab rerun RUN_DIR`` replays
the recorded call; every random choice is seeded by the recorded options through local generators
(the global RNG is never touched), so a rerun gives the same ``results.json``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import ConfigError
from ..runs import Run
from .model import ExplainModel

_VERBS = "transferlab.explain.run"


@dataclass
class ExplainOptions:
    """Which network to explain and where: the options every explain command shares.

    backbone, weights : a registry backbone and its weights (``imagenet``, a tag, ``none`` or a path).
    model : a saved transferlab model folder, explained (with its classes) instead of ``backbone``.
    preprocess : ``weights`` (resize + centre crop) or ``squash``.
    seed : seed of the random weights and of every random choice of the method.
    device : ``auto|cpu|cuda|mps``.
    """

    backbone: str = "vgg16"
    weights: str = "imagenet"
    model: str | None = None
    preprocess: str = "weights"
    seed: int = 0
    device: str = "auto"

    @classmethod
    def of(cls, options: "ExplainOptions | dict | None", **overrides: Any) -> "ExplainOptions":
        """Options from an instance, the dict ``config.json`` records, or keywords (``backbone=...``)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown explain option(s) {', '.join(unknown)}; expected {', '.join(sorted(names))}")
        if isinstance(options, dict):
            options = cls(**options)
        options = options or cls()
        options = cls(**{**asdict(options), **overrides})
        if options.model is not None:
            options.model = str(options.model)
        return options


class ExplainResults(dict):
    """What ``results.json`` holds (a plain dict), with the run folder ``out`` and the figures/tables
    written (``files``, besides ``results.json`` and ``config.json``)."""

    out: Path
    files: list[Path]


def explain_model(options: ExplainOptions, device) -> ExplainModel:
    """The network ``options`` name: a saved model folder, or a registry backbone with its weights."""
    if options.model is not None:
        return ExplainModel.from_saved_model(options.model, device=device)
    return ExplainModel.from_backbone(options.backbone, options.weights, seed=options.seed,
                                      preprocessing_mode=options.preprocess, device=device)


@contextmanager
def _explain_run(command: str, verb: str, call: dict[str, Any], options: ExplainOptions,
                 images: Sequence[str], out: Path | str | None, **recorded: Any
                 ) -> Iterator[tuple[Run, ExplainModel]]:
    """The common part of every verb: the run folder, the device, the model and what they resolved to."""
    from .._utils import resolve_device

    # Single images are read-only inputs but their folder (often the current one) is no dataset: only a
    # saved model folder is protected from being written into.
    inputs = (options.model,) if options.model is not None else ()
    with Run(f"explain {command}", f"{_VERBS}:{verb}", {**call, "options": options}, out, inputs=inputs) as run:
        dev = resolve_device(options.device)
        net = explain_model(options, dev)
        saved = options.model is not None
        run.record(model=net.name, backbone=None if saved else options.backbone,
                   weights=None if saved else options.weights, saved_model=options.model,
                   images=[str(p) for p in images], seed=options.seed, device=options.device,
                   resolved_device=str(dev), preprocessing=net.preprocessing.as_dict(), **recorded)
        run.log.info("explaining %s on %s", net.name, dev)
        yield run, net


def _done(run: Run, results: dict[str, Any], files: list[Path]) -> ExplainResults:
    from .._utils import write_json

    write_json(run.out / "results.json", results)
    run.log.info("wrote %s, results.json", ", ".join(p.name for p in files))
    done = ExplainResults(results)
    done.out, done.files = run.out, list(files)
    return done


def _paths(images: Sequence[str | Path]) -> list[str]:
    if isinstance(images, (str, Path)):
        images = [images]
    if not images:
        raise ConfigError("no image given; pass one or more image files")
    return [str(p) for p in images]


def _names(images: Sequence[str]) -> list[str]:
    return [Path(p).name for p in images]


def _heat_titles(rows: list[dict]) -> list[str]:
    return [f"{r['image']}\n{r['target']} ({r['target_probability']:.2f})" for r in rows]


# ------------------------------------------------------------------ verbs
def _localized(run: Run, pixels, maps, rows: list[dict], localize: float | None, smooth: float | None,
               map_name: str) -> list[Path]:
    """With ``localize`` (top percent): mask + box per image into the rows, and ``localization.png``."""
    if localize is None:
        return []
    from .figures import localization_grid
    from .localize import localize as locate

    found = [locate(m, localize, smooth) for m in maps]
    for row, loc in zip(rows, found):
        row["localization"] = {**loc.as_dict(), "top_percent": localize, "image_size": list(loc.mask.shape)}
    titles = [f"{r['image']}: {r['target']}" for r in rows]
    return [localization_grid(pixels.detach().cpu(), found, titles, run.out / "localization.png", map_name)]


def run_saliency(images: Sequence[str | Path], target: str | int | None = None, *, smoothgrad: bool = False,
                 samples: int = 25, noise: float = 0.15, localize: float | None = None, smooth: float | None = None,
                 options: ExplainOptions | dict | None = None, out: Path | str | None = None,
                 **option_kw: Any) -> ExplainResults:
    """Saliency maps (Simonyan et al. 2014), optionally SmoothGrad: ``saliency.png`` + per-image rows.

    ``localize`` (a percentage): weak localisation, the largest region of the map's top pixels as a mask and a
    box (:func:`~transferlab.explain.localize.localize`, ``smooth`` its Gaussian sigma), ``localization.png``.
    """
    from .figures import heatmap_grid
    from .saliency import SaliencyMap

    opts, images = ExplainOptions.of(options, **option_kw), _paths(images)
    settings = {"target": target, "smoothgrad": smoothgrad, "samples": samples, "noise": noise,
                "localize": localize, "smooth": smooth}
    with _explain_run("saliency", "run_saliency", {"images": images, **settings}, opts, images, out,
                      **settings) as (run, net):
        pixels = net.load_pixels(images)
        exp = SaliencyMap(net, smoothgrad=smoothgrad, samples=samples, noise=noise,
                          seed=opts.seed).attribute(pixels, target)
        rows = exp.rows(net.classes, _names(images))
        method = "smoothgrad" if smoothgrad else "saliency"
        fig = heatmap_grid(pixels, exp.maps, _heat_titles(rows), run.out / "saliency.png", method)
        boxes = _localized(run, pixels, exp.maps, rows, localize, smooth, method)
        return _done(run, {"method": method, "images": rows}, [fig, *boxes])


def run_gradcam(images: Sequence[str | Path], target: str | int | None = None, *, layer: str | None = None,
                localize: float | None = None, smooth: float | None = None,
                options: ExplainOptions | dict | None = None, out: Path | str | None = None,
                **option_kw: Any) -> ExplainResults:
    """Grad-CAM (Selvaraju et al. 2017) at ``layer`` (default: the backbone's last convolutional block);
    ``localize`` as in :func:`run_saliency` (Selvaraju et al. localise by thresholding the map too)."""
    from .figures import heatmap_grid
    from .gradcam import GradCAM

    opts, images = ExplainOptions.of(options, **option_kw), _paths(images)
    settings = {"target": target, "layer": layer, "localize": localize, "smooth": smooth}
    with _explain_run("gradcam", "run_gradcam", {"images": images, **settings}, opts, images, out,
                      **settings) as (run, net):
        cam = GradCAM(net, layer)
        pixels = net.load_pixels(images)
        exp = cam.attribute(pixels, target)
        rows = exp.rows(net.classes, _names(images))
        run.record(resolved_layer=cam.layer)
        fig = heatmap_grid(pixels, exp.maps, _heat_titles(rows), run.out / "gradcam.png", f"Grad-CAM {cam.layer}",
                           cmap="jet")
        boxes = _localized(run, pixels, exp.maps, rows, localize, 0.0 if smooth is None else smooth, "Grad-CAM")
        return _done(run, {"method": "gradcam", "layer": cam.layer, "map_size": list(cam.last_low_res_.shape[1:]),
                           "images": rows}, [fig, *boxes])


def run_adversarial(images: Sequence[str | Path], target: str | int | None = None, *, method: str = "iterative",
                    eps: float | None = None, step_size: float | None = None, steps: int | None = None,
                    min_eps: bool = False, max_eps: float = 16 / 255, tol: float = 0.05 / 255,
                    options: ExplainOptions | dict | None = None, out: Path | str | None = None,
                    **option_kw: Any) -> ExplainResults:
    """Adversarial examples: the practical's iterative method, FGSM, PGD or Carlini-Wagner L2 (targeted when
    ``target`` is given); with ``min_eps`` (FGSM/PGD), per image the smallest fooling L-inf budget in
    ``(0, max_eps]`` within ``tol``. Always: the perturbation against the saliency map (report 002, Q5)."""
    from .adversarial import make_attack
    from .figures import adversarial_grid, perturbation_saliency_grid, save_image
    from .robustness import minimal_eps, perturbation_vs_saliency

    opts, images = ExplainOptions.of(options, **option_kw), _paths(images)
    settings = {"target": target, "method": method, "eps": eps, "step_size": step_size, "steps": steps,
                "min_eps": min_eps, "max_eps": max_eps, "tol": tol}
    with _explain_run("adversarial", "run_adversarial", {"images": images, **settings}, opts, images, out,
                      **settings) as (run, net):
        pixels = net.load_pixels(images)
        if min_eps:
            search = minimal_eps(net, pixels, target, method=method, max_eps=max_eps, tol=tol, steps=steps,
                                 seed=opts.seed)
            result, used_eps = search.result, None
        else:
            attack = make_attack(method, net, eps=eps, step_size=step_size, steps=steps, seed=opts.seed)
            result, used_eps = attack.attack(pixels, target), getattr(attack, "eps", None)
        rows = result.rows(net.classes, _names(images))
        pert, sal, stats = perturbation_vs_saliency(net, result)
        for i, row in enumerate(rows):
            if min_eps:
                found = search.eps[i]
                row.update(min_eps=found, min_eps_255=None if found is None else found * 255)
            row.update(saliency_pearson=stats[i]["pearson"], saliency_spearman=stats[i]["spearman"])
        titles = [(f"original: {r['original_class']} ({r['original_confidence']:.2f})",
                   f"adversarial: {r['adversarial_class']} ({r['adversarial_confidence']:.2f})") for r in rows]
        files = [adversarial_grid(result.original, result.adversarial, titles, run.out / "adversarial.png"),
                 perturbation_saliency_grid(result.original, pert, sal,
                                            [f"{r['image']}: {r['original_class']}" for r in rows], stats,
                                            run.out / "perturbation_vs_saliency.png")]
        for i, name in enumerate(_names(images)):
            files.append(save_image(result.adversarial[i], run.out / f"adversarial_{i:02d}_{Path(name).stem}.png"))
        extra = {"max_eps": max_eps, "tol": tol} if min_eps else {}
        return _done(run, {"method": method, "eps": used_eps, "min_eps": min_eps, **extra, "images": rows}, files)


def run_classviz(target: str | int | None = None, *, init: str | Path | None = None, l2_reg: float = 1e-3,
                 lr: float = 5.0, iterations: int = 200, jitter: int | None = None, blur_every: int = 10,
                 blur_sigma: float = 0.5, show_every: int | None = None,
                 options: ExplainOptions | dict | None = None, out: Path | str | None = None,
                 **option_kw: Any) -> ExplainResults:
    """Class visualisation by gradient ascent (Simonyan 2014, Yosinski 2015): final image, strip, score curve."""
    from .class_viz import ClassVisualizer
    from .figures import image_strip, save_image, score_curve

    opts = ExplainOptions.of(options, **option_kw)
    init = None if init is None else str(init)
    settings = {"target": target, "init": init, "l2_reg": l2_reg, "lr": lr, "iterations": iterations,
                "jitter": jitter, "blur_every": blur_every, "blur_sigma": blur_sigma, "show_every": show_every}
    with _explain_run("classviz", "run_classviz", settings, opts, [init] if init is not None else [], out,
                      **settings) as (run, net):
        viz = ClassVisualizer(net, l2_reg=l2_reg, lr=lr, iterations=iterations, max_jitter=jitter,
                              blur_every=blur_every, blur_sigma=blur_sigma, show_every=show_every, seed=opts.seed)
        init_pixels = net.load_pixels([init])[0] if init is not None else None
        res = viz.visualize(target, init=init_pixels)
        name = net.classes[res.target]
        files = [save_image(res.image, run.out / "classviz.png"),
                 image_strip([s[1] for s in res.snapshots], [f"iter {s[0]}" for s in res.snapshots],
                             run.out / "strip.png",
                             f"{name}: lr={lr} l2={l2_reg} blur every {blur_every} (sigma {blur_sigma})"),
                 score_curve(res.scores, run.out / "scores.png", f"score of {name}")]
        return _done(run, {"target": name, "target_index": res.target, "final_score": res.final_score,
                           "final_probability": res.final_probability, "first_score": res.scores[0],
                           "scores": res.scores, "snapshots": [s[0] for s in res.snapshots]}, files)


def run_perceptual(image_a: str | Path, image_b: str | Path, layers: Sequence[str] | None = None, *,
                   options: ExplainOptions | dict | None = None, out: Path | str | None = None,
                   **option_kw: Any) -> ExplainResults:
    """Pixel L1/L2 and feature L1/L2 at named layers between two images (perceptual loss)."""
    from .figures import pair_figure
    from .perceptual import PerceptualDistance

    opts, (image_a, image_b) = ExplainOptions.of(options, **option_kw), _paths([image_a, image_b])
    layers = list(layers) if layers else None
    call = {"image_a": image_a, "image_b": image_b, "layers": layers}
    with _explain_run("perceptual", "run_perceptual", call, opts, [image_a, image_b], out,
                      layers=layers) as (run, net):
        metric = PerceptualDistance(net, layers)
        run.record(resolved_layers=metric.layers)
        a, b = net.load_pixels([image_a, image_b])
        distances = metric.compare(a, b)
        fig = pair_figure(a, b, _names([image_a, image_b]), distances, run.out / "pair.png")
        return _done(run, {"layers": metric.layers, "distances": distances}, [fig])


def run_perceptual_experiment(image: str | Path, layers: Sequence[str] | None = None, *, shift: int = 1,
                              sigma: float = 0.1, full_resolution: bool = False,
                              options: ExplainOptions | dict | None = None,
                              out: Path | str | None = None, **option_kw: Any) -> ExplainResults:
    """Report 004: an image vs its ``shift``-pixel translation and vs a Gaussian-noised copy (table + figure);
    ``full_resolution`` repeats it on the photo at its own size, pixel distances in 0-255 units."""
    from ..report import write_table
    from .figures import image_strip
    from .perceptual import perceptual_experiment

    opts, (image,) = ExplainOptions.of(options, **option_kw), _paths([image])
    layers = list(layers) if layers else None
    settings = {"layers": layers, "shift": shift, "sigma": sigma, "full_resolution": full_resolution}
    with _explain_run("perceptual-experiment", "run_perceptual_experiment", {"image": image, **settings}, opts,
                      [image], out, **settings) as (run, net):
        full = None
        if full_resolution:
            from ..data import load_rgb, pil_to_tensor

            full = pil_to_tensor(load_rgb(image))
        rows, images = perceptual_experiment(net, net.load_pixels([image]), layers, shift=shift, sigma=sigma,
                                             seed=opts.seed, full=full)
        csv_path, md_path = write_table(rows, run.out, "perceptual")
        fig = image_strip(list(images.values()), list(images), run.out / "images.png",
                          f"shift {shift}px, noise sigma {sigma}")
        return _done(run, {"shift": shift, "sigma": sigma, "full_resolution": full_resolution, "rows": rows},
                     [csv_path, md_path, fig])
