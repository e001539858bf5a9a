"""Feature engines end to end (issue 15 items 1, 2, 4): the seeds' plain loop vs transferlab's torch engine
(fp32 default, bf16) vs the OpenVINO engine (fp32, bf16), in the same run, decoding included.

Speed: VGG16 relu7, ResNet-50 and EfficientNet-Lite0 on generated grayscale 300x250 JPEGs (squash to 224, as
the seeds; ``benchmarks/extraction.py``'s images and plain loop). Each mode runs in its own process (its peak
RSS is its own) with the feature cache off; the OpenVINO model is converted and compiled once beforehand
(timed separately, "convert s") and each measured run loads it from the model cache, as a second run would.
Decoding alone is timed in the same process ("decode s": the same DataLoader with no forward pass), to see
whether it bounds the fast engines. VGG16 and ResNet-50 use random weights (speed does not depend on them);
EfficientNet-Lite0 its real ImageNet weights, so its cosines are real-weight numbers.

Precision: the real EfficientNet-Lite0 on the demo's photo-patch task (``data/photos.py``: patches of
bundled photographs, train from one half of each photograph, test from the other): cosine of each mode's
pre_logits features to torch fp32 (min / mean) and LinearSVC(C=1) test accuracy, mean over seeded draws
of ``--train-per-class`` training patches, and how many test predictions differ from fp32's.

    .venv/bin/python benchmarks/engines.py --images 256 --out benchmarks/results/engines.md
    .venv/bin/python benchmarks/engines.py --images 8 --patches 4 --draws 2   # a quick check of the script
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extraction import make_images, plain_loop  # noqa: E402  (the seeds' loop baseline, one definition)

MODELS = {"vgg16": ("relu7", "none"), "resnet50": ("pre_logits", "none"),
          "efficientnet_lite0": ("pre_logits", "imagenet")}
MODES = [("torch", "fp32", -1), ("torch", "bf16", -1), ("openvino", "fp32", -1), ("openvino", "bf16", -1),
         ("openvino", "bf16", 1)]


def decode_seconds(paths: list[str], preprocessing, workers: int, batch_size: int) -> float:
    """The extraction's own decoding (ImagePathDataset + the weights' transform + DataLoader), no forward."""
    from torch.utils.data import DataLoader

    from transferlab.data import ImagePathDataset, collate_skipping, image_transform

    loader = DataLoader(ImagePathDataset(paths, transform=image_transform(preprocessing)), batch_size=batch_size,
                        num_workers=workers, collate_fn=collate_skipping)
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def child(args) -> None:
    """One measurement in this process: JSON with seconds, peak RSS; features saved to ``args.save``."""
    from transferlab.backbones import load_backbone
    from transferlab.features import extract_features
    from transferlab.features.extract import default_batch_size, default_workers

    folder = Path(args.folder)
    layer, weights = MODELS[args.backbone]
    if args.engine == "plain":
        run = plain_loop(folder, args.backbone, layer)
        start = time.perf_counter()
        feats, _ = run()
        seconds, decode = time.perf_counter() - start, None
    else:
        import torch

        paths = sorted(str(p) for p in folder.rglob("*.jpg"))
        if args.prepare:
            paths = paths[:2]  # converts and compiles into the model cache; a feature entry of its own
        backbone = load_backbone(args.backbone, weights, seed=0, preprocessing_mode="squash")
        workers = default_workers() if args.workers < 0 else args.workers
        start = time.perf_counter()
        result = extract_features(paths, backbone, [layer], l2=False, precision=args.precision, engine=args.engine,
                                  cache_dir=args.cache, use_cache=False, progress=False, workers=workers)
        seconds, feats = time.perf_counter() - start, result.features[layer]
        decode = None if args.prepare else decode_seconds(paths, backbone.preprocessing, workers,
                                                          default_batch_size(torch.device("cpu")))
    np.save(args.save, feats)
    print(json.dumps({"seconds": seconds, "decode_seconds": decode,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(folder: Path, cache: Path, backbone: str, engine: str, precision: str = "fp32", workers: int = -1,
            prepare: bool = False) -> dict:
    save = folder.parent / f"{backbone}-{engine}-{precision}-{workers}.npy"
    cmd = [sys.executable, __file__, "--child", "--engine", engine, "--backbone", backbone, "--precision", precision,
           "--folder", str(folder), "--cache", str(cache), "--save", str(save), "--workers", str(workers)]
    out = subprocess.run(cmd + (["--prepare"] if prepare else []), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "features": np.load(save)}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return (a * b).sum(1)


def mode_name(engine: str, precision: str, workers: int) -> str:
    name = "transferlab default (torch fp32)" if (engine, precision) == ("torch", "fp32") else \
        f"`--engine {engine} --precision {precision}`"
    return name + (f" `--workers {workers}`" if workers >= 0 else "")


def speed(args, tmp: Path) -> list[dict]:
    from transferlab.features.precision import cpu_supports_bf16

    folder = tmp / "images"
    make_images(folder, args.images)
    rows = []
    for backbone in args.backbones:
        cache = tmp / f"cache-{backbone}"
        plain = measure(folder, cache, backbone, "plain")
        results, prepared = [("plain loop (seeds' style)", plain, None)], set()
        for engine, precision, workers in MODES:
            if precision == "bf16" and not cpu_supports_bf16():
                continue
            convert = None
            if engine == "openvino" and precision not in prepared:  # fp32: convert + compile; bf16: compile
                prepared.add(precision)
                convert = measure(folder, cache, backbone, engine, precision, prepare=True)["seconds"]
            results.append((mode_name(engine, precision, workers),
                            measure(folder, cache, backbone, engine, precision, workers), convert))
        base, default = plain["seconds"], results[1][1]
        for name, m, convert in results:
            c = cosines(m["features"], default["features"]) if m is not plain else None
            rows.append({
                "backbone": f"{backbone} {MODELS[backbone][0]}", "mode": name,
                "images/s": round(args.images / m["seconds"], 1), "x plain": round(base / m["seconds"], 2),
                "x torch default": round(default["seconds"] / m["seconds"], 2),
                "decode s": "" if m.get("decode_seconds") is None else round(m["decode_seconds"], 2),
                "seconds": round(m["seconds"], 2), "peak RSS MB": round(m["peak_rss_mb"]),
                "cosine to torch fp32 min / mean": "" if c is None else f"{c.min():.6f} / {c.mean():.6f}",
                "convert + compile s": "" if convert is None else round(convert, 1)})
        print(json.dumps(rows[-len(results):], indent=1), flush=True)
        shutil.rmtree(cache, ignore_errors=True)
    return rows


def precision(args, tmp: Path) -> tuple[list[dict], int, int]:
    """The real EfficientNet-Lite0 on the photo-patch task, every engine and precision."""
    from sklearn.svm import LinearSVC

    from transferlab.data import write_photo_patches
    from transferlab.features.precision import cpu_supports_bf16
    from transferlab.pipeline import ExtractionOptions, features_for

    patches = write_photo_patches(tmp / "patches", train_per_class=args.patches, test_per_class=args.patches)
    modes = [("torch", "fp32"), ("openvino", "fp32")]
    modes += [("torch", "bf16"), ("openvino", "bf16")] if cpu_supports_bf16() else []
    feats = {}
    for engine, prec in modes:
        options = ExtractionOptions(backbone="efficientnet_lite0", weights="imagenet", layers=["pre_logits"],
                                    train_per_class=None, engine=engine, precision=prec, workers=0, progress=False,
                                    cache_dir=tmp / "precision-cache")
        feats[(engine, prec)] = features_for(patches, options).features["pre_logits"]
    reference = feats[("torch", "fp32")]
    y = reference.y_train
    rng = np.random.default_rng(0)
    draws = [np.concatenate([rng.choice(np.flatnonzero(y == c), min(args.train_per_class, int((y == c).sum())),
                                        replace=False) for c in np.unique(y)]) for _ in range(args.draws)]

    def accuracies(f):
        out, predictions = [], []
        for rows in draws:
            svm = LinearSVC(C=1.0).fit(f.X_train[rows], f.y_train[rows])
            predictions.append(svm.predict(f.X_test))
            out.append(float((predictions[-1] == f.y_test).mean()))
        return np.array(out), np.concatenate(predictions)

    ref_acc, ref_pred = accuracies(reference)
    table = []
    for (engine, prec), f in feats.items():
        assert f.paths_test == reference.paths_test and f.paths_train == reference.paths_train
        c = cosines(np.concatenate([f.X_train, f.X_test]), np.concatenate([reference.X_train, reference.X_test]))
        acc, pred = accuracies(f)
        table.append({"engine": engine, "precision": prec, "cosine to torch fp32 min": f"{c.min():.6f}",
                      "cosine mean": f"{c.mean():.6f}", "test accuracy (mean of draws)": f"{acc.mean():.4f}",
                      "change vs torch fp32": f"{acc.mean() - ref_acc.mean():+.4f}",
                      "test predictions changed": f"{int((pred != ref_pred).sum())} / {len(pred)}"})
    print(json.dumps(table, indent=1), flush=True)
    return table, len(reference.y_test), len(np.unique(y))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=256, help="JPEGs for the speed part")
    parser.add_argument("--backbones", nargs="+", default=list(MODELS))
    parser.add_argument("--patches", type=int, default=20, help="photo patches per class and split (precision)")
    parser.add_argument("--train-per-class", type=int, default=5, help="training patches per class in a draw")
    parser.add_argument("--draws", type=int, default=10, help="seeded training draws (precision)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--engine", default="torch")
    parser.add_argument("--backbone", default="vgg16")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--folder")
    parser.add_argument("--cache")
    parser.add_argument("--save")
    parser.add_argument("--workers", type=int, default=-1, help="-1: transferlab's default")
    args = parser.parse_args()
    if args.child:
        return child(args)

    import openvino
    import torch

    from transferlab.features.precision import cpu_supports_bf16
    from transferlab.report.tables import markdown_table

    tmp = Path(tempfile.mkdtemp(prefix="tl-engines-"))
    text = (f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), bf16 supported: "
            f"{cpu_supports_bf16()}, torch {torch.__version__}, OpenVINO {openvino.get_version()}, torch threads "
            f"{torch.get_num_threads()} (OpenVINO uses as many).\n\n")
    if not args.skip_speed:
        rows = speed(args, tmp)
        text += (f"## Speed: {args.images} grayscale 300x250 JPEGs at 224x224 (squash), decoding included\n\n"
                 "Each mode in its own process, feature cache off; times cover the extraction (hashing the files, "
                 "decoding, forward, pooling) and exclude building the network; OpenVINO's conversion and "
                 "compilation are excluded too ('convert + compile s': the first OpenVINO run of a network "
                 "converts and compiles, the next precision only compiles): the measured run loads them from the "
                 "model cache. 'decode s': the same decoding alone, in the same process. "
                 "Cosine: to transferlab's torch fp32 features (random weights for VGG16 and ResNet-50, the "
                 "real ones for EfficientNet-Lite0).\n\n" + markdown_table(rows) + "\n\n")
    table, n_test, n_classes = precision(args, tmp)
    text += (f"## Precision: the real EfficientNet-Lite0 (pre_logits) on the photo-patch task\n\n"
             f"{n_classes} classes, {args.patches} patches per class and split ({n_test} test patches); "
             f"LinearSVC(C=1) on {args.train_per_class} training patches per class, {args.draws} seeded draws "
             "(the same draws for every mode); cosine over all train and test patches.\n\n"
             + markdown_table(table) + "\n")
    print(text)
    if args.out:
        args.out.write_text(text)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
