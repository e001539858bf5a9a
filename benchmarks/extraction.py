"""Feature-extraction throughput: the seeds' plain loop vs transferlab's default and fast modes, and the cache.

Each mode runs in its own process (so its peak RSS is its own) on the same generated images, in the same
run: a plain loop in the style of the seeds (torchvision ImageFolder with the report-000 transforms,
DataLoader(batch_size=32), fp32 eager, the VGG16relu7-style truncated model), transferlab's default (fp32,
channels-last, batch norm folded, CPU batch 8), its fast mode (the same with a bf16 copy of the network under
autocast, only where the CPU supports bf16), and a cache hit. Features are compared by cosine similarity to the plain loop. Weights are random (no
download here); speed does not depend on their values.

    .venv/bin/python benchmarks/extraction.py --images 128 --out benchmarks/results/extraction.md
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = {"vgg16": "relu7", "resnet50": "pre_logits"}


def make_images(folder: Path, n: int) -> None:
    """Photos from scikit-image, randomly cropped/resized to 300x250 (15 Scene's typical size), two classes."""
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(0)
    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), np.stack([data.camera()] * 3, -1)]
    for i in range(n):
        src = sources[i % len(sources)]
        h, w = src.shape[:2]
        y, x = rng.integers(0, h // 3), rng.integers(0, w // 3)
        crop = Image.fromarray(src[y:y + 2 * h // 3, x:x + 2 * w // 3]).resize((300, 250))
        (folder / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        crop.convert("L").save(folder / f"c{i % 2}" / f"{i:04d}.jpg")  # grayscale like 15 Scene


def plain_loop(folder: Path, backbone: str, layer: str):
    """The seeds' way: ImageFolder + Lambda transforms + DataLoader, fp32, eager, model sliced by hand.

    Returns a function that runs the extraction (the network is built beforehand, outside the timing)."""
    import torch
    from PIL import Image
    from torch import nn
    from torchvision import datasets, transforms

    from transferlab.backbones import load_backbone

    def duplicate_channel(img):
        g = np.array(img.convert("L"), dtype=np.uint8)
        return Image.fromarray(np.dstack([g, g, g]), "RGB")

    transform = transforms.Compose([transforms.Lambda(duplicate_channel),
                                    transforms.Lambda(lambda img: img.resize((224, 224), Image.BILINEAR)),
                                    transforms.ToTensor(),
                                    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    dataset = datasets.ImageFolder(str(folder), transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=False)
    net = load_backbone(backbone, "none", seed=0).model.eval()
    if backbone == "vgg16":
        model = nn.Sequential(*net.features.children(), nn.Flatten(), *list(net.classifier.children())[:-2])
    else:
        model = nn.Sequential(*list(net.children())[:-1], nn.Flatten())
    def run():
        rows = []
        with torch.no_grad():
            for x, _ in loader:
                rows.append(model(x).numpy())
        return np.concatenate(rows), len(dataset)

    return run


def transferlab_mode(folder: Path, backbone: str, layer: str, precision: str, cache: Path | None, workers: int | None):
    from transferlab.backbones import load_backbone
    from transferlab.features import extract_features

    paths = sorted(str(p) for p in folder.rglob("*.jpg"))
    model = load_backbone(backbone, "none", seed=0, preprocessing_mode="squash")

    def run():
        result = extract_features(paths, model, [layer], l2=False, precision=precision, cache_dir=cache,
                                  use_cache=cache is not None, progress=False, workers=workers)
        return result.features[layer], result.n_forward

    return run


def child(args) -> None:
    """One measurement in this process: prints JSON with seconds, images, peak RSS, and saves features."""
    folder, cache = Path(args.folder), Path(args.cache) if args.cache else None
    if args.mode == "plain":
        run = plain_loop(folder, args.backbone, MODELS[args.backbone])
    else:
        workers = None if args.workers < 0 else args.workers
        run = transferlab_mode(folder, args.backbone, MODELS[args.backbone], args.precision, cache, workers)
    start = time.perf_counter()
    feats, n = run()
    seconds = time.perf_counter() - start
    np.save(args.save, feats)
    print(json.dumps({"seconds": seconds, "forwarded": n, "peak_rss_mb": resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(folder: Path, backbone: str, mode: str, precision: str = "fp32", cache: Path | None = None,
            workers: int = -1) -> dict:
    save = folder.parent / f"{backbone}-{mode}-{precision}.npy"
    cmd = [sys.executable, __file__, "--child", "--mode", mode, "--backbone", backbone, "--precision", precision,
           "--folder", str(folder), "--save", str(save), "--workers", str(workers)] + (
               ["--cache", str(cache)] if cache else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return {**json.loads(out), "features": np.load(save)}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return float((a * b).sum(1).min())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--backbones", nargs="+", default=list(MODELS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--mode", default="plain")
    parser.add_argument("--backbone", default="vgg16")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--folder")
    parser.add_argument("--cache")
    parser.add_argument("--save")
    parser.add_argument("--workers", type=int, default=-1, help="-1: transferlab's default")
    args = parser.parse_args()
    if args.child:
        return child(args)

    from transferlab.features.precision import cpu_supports_bf16

    import os
    import platform

    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-"))
    folder = tmp / "images"
    make_images(folder, args.images)
    rows = []
    for backbone in args.backbones:
        plain = measure(folder, backbone, "plain")
        cache = tmp / f"cache-{backbone}"
        default = measure(folder, backbone, "transferlab", "fp32", cache)
        hit = measure(folder, backbone, "transferlab", "fp32", cache)
        modes = [("plain loop (seeds' style)", plain), ("transferlab default (fp32)", default),
                 ("transferlab fp32, --workers 1", measure(folder, backbone, "transferlab", "fp32", workers=1))]
        if cpu_supports_bf16():
            modes.append(("transferlab --precision bf16", measure(folder, backbone, "transferlab", "bf16")))
            modes.append(("transferlab --precision bf16 --workers 1",
                          measure(folder, backbone, "transferlab", "bf16", workers=1)))
        modes.append(("cache hit (fp32)", hit))
        base = args.images / plain["seconds"]
        for name, m in modes:
            rate = args.images / m["seconds"]
            rows.append({"backbone": f"{backbone} {MODELS[backbone]}", "mode": name, "images/s": round(rate, 2),
                         "x plain": round(rate / base, 2), "seconds": round(m["seconds"], 2),
                         "forwarded": m["forwarded"], "peak RSS MB": round(m["peak_rss_mb"]),
                         "min cosine vs plain": f"{cosine(m['features'], plain['features']):.6f}"})
        print(json.dumps(rows[-len(modes):], indent=1), flush=True)

    from transferlab.report.tables import markdown_table

    header = (f"{args.images} grayscale 300x250 JPEGs at 224x224 (squash, as the seeds), random weights; "
              f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch threads default; "
              f"bf16 supported: {cpu_supports_bf16()}. Each mode in its own process (peak RSS is the process's); "
              "times cover the extraction only (building the network is excluded for every mode alike; "
              "for transferlab they include hashing the files for the cache key and writing the cache).\n\n")
    text = header + markdown_table(rows)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
