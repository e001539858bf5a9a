"""Training throughput of fine-tuning: images/s for resnet18 and vgg16, frozen and unfrozen, at 224.

Each configuration is built exactly as ``transferlab finetune`` builds it (registry backbone, uniform new
head, freeze policy, the trainer's SGD parameter groups) and runs a few full training steps (forward,
cross-entropy, backward, optimiser step) on random 224x224 batches; one warm-up step is not timed.
Random weights are fine for speed. Image decoding and augmentation are excluded (they run in
DataLoader workers, in parallel with the steps). Results go to ``benchmarks/results/finetune.md``.

    .venv/bin/python benchmarks/finetune.py [--batch-size 8] [--steps 3] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from transferlab.backbones import load_backbone
from transferlab.finetune import FinetuneConfig, apply_freeze, replace_head
from transferlab.finetune.freezing import set_train_mode
from transferlab.finetune.trainer import make_optimizer

CONFIGS = [("resnet18", "all-but-head"), ("resnet18", "none"), ("vgg16", "all-but-head"), ("vgg16", "none")]


def measure(backbone: str, freeze: str, batch_size: int, steps: int, num_classes: int = 15) -> dict:
    cfg = FinetuneConfig.from_options(backbone=backbone, weights="none", freeze=freeze)
    bb = load_backbone(backbone, weights="none")
    replace_head(bb.model, bb.spec, num_classes)
    apply_freeze(bb.model, bb.spec, cfg.freeze)
    model = bb.model
    optimizer = make_optimizer(model, bb.spec, cfg)
    size = bb.preprocessing.crop_size
    x = torch.randn(batch_size, 3, size, size)
    y = torch.randint(0, num_classes, (batch_size,))
    set_train_mode(model)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"backbone": backbone, "freeze": freeze, "input": size, "batch": batch_size, "steps": steps,
            "trainable_params": trainable, "s_per_step": seconds / steps, "images_per_s": batch_size * steps / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1],
                        help="torch thread counts to measure (each configuration once per count)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "finetune.md")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for backbone, freeze in CONFIGS:
            row = {"threads": threads, **measure(backbone, freeze, args.batch_size, args.steps)}
            rows.append(row)
            print(f"{threads} thr {backbone:9s} {freeze:13s} {row['images_per_s']:7.2f} images/s "
                  f"({row['s_per_step']:.2f} s/step)", flush=True)
    loads.append(os.getloadavg()[0])
    lines = [
        "# Fine-tuning throughput (CPU)", "",
        f"`benchmarks/finetune.py --batch-size {args.batch_size} --steps {args.steps} "
        f"--threads {' '.join(map(str, args.threads))}`: "
        "full training steps (forward, loss, backward, SGD step) on random 224x224 batches, random weights, "
        "one untimed warm-up step; decoding/augmentation excluded.", "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other jobs "
        f"(1-min load average {loads[0]:.1f} at start, {loads[1]:.1f} at the end), torch {torch.__version__}.", "",
        "| threads | backbone | freeze | trainable parameters | s/step | training images/s |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['threads']} | {r['backbone']} | {r['freeze']} | {r['trainable_params']:,} | "
              f"{r['s_per_step']:.2f} | {r['images_per_s']:.2f} |" for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
