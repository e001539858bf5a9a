"""How fast can bfloat16 make VGG16 on this CPU? Convolution throughput, layer by layer, forward passes only.

Times every convolution of VGG16 at 224x224 (batch 8, torch's default threads) as the seeds run it (fp32,
NCHW) and as transferlab's modes run it (fp32 channels-last; bf16 channels-last), in GFLOP/s (2 x
multiply-adds / s), then the whole relu7 network forward the same three ways. No decoding, hashing or cache
writes: this is the ceiling an end-to-end extraction can approach, not reach. Random weights.

    .venv/bin/python benchmarks/bf16_ceiling.py --out benchmarks/results/bf16_ceiling.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

MODES = {"fp32 NCHW (seeds)": (torch.float32, torch.contiguous_format),
         "fp32 channels-last": (torch.float32, torch.channels_last),
         "bf16 channels-last": (torch.bfloat16, torch.channels_last)}


def seconds_per_call(fn, repeats: int) -> float:
    fn()  # builds oneDNN's kernels for this shape
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def conv_rows(batch: int, repeats: int) -> tuple[list[dict], dict[str, float]]:
    from torchvision.models import vgg16

    features = vgg16().features
    rows, totals, size = [], dict.fromkeys(MODES, 0.0), 224
    for layer in features:
        if isinstance(layer, nn.MaxPool2d):
            size //= 2
        if not isinstance(layer, nn.Conv2d):
            continue
        macs = batch * size * size * layer.in_channels * layer.out_channels * 9
        row = {"conv": f"{layer.in_channels}->{layer.out_channels} @ {size}x{size}"}
        for mode, (dtype, layout) in MODES.items():
            x = torch.randn(batch, layer.in_channels, size, size).to(dtype).contiguous(memory_format=layout)
            w = layer.weight.detach().to(dtype).contiguous(memory_format=layout)
            b = layer.bias.detach().to(dtype)
            with torch.inference_mode():
                t = seconds_per_call(lambda: F.conv2d(x, w, b, padding=1), repeats)
            totals[mode] += t
            row[f"{mode} GFLOP/s"] = round(2 * macs / t / 1e9)
        rows.append(row)
    return rows, totals


def network_rates(batch: int, repeats: int) -> dict[str, float]:
    from torchvision.models import vgg16

    net = vgg16().eval()
    net.classifier = net.classifier[:5]  # up to relu7
    rates = {}
    for mode, (dtype, layout) in MODES.items():
        model = net.to(dtype).to(memory_format=layout)
        x = torch.randn(batch, 3, 224, 224).to(dtype).contiguous(memory_format=layout)
        with torch.inference_mode():
            rates[mode] = batch / seconds_per_call(lambda: model(x), repeats)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from transferlab.report.tables import markdown_table

    rows, totals = conv_rows(args.batch, args.repeats)
    rates = network_rates(args.batch, args.repeats)
    base = "fp32 NCHW (seeds)"
    summary = [{"mode": mode, "all 13 convs, ms per image": round(1000 * totals[mode] / args.batch, 1),
                "convs x seeds": round(totals[base] / totals[mode], 2),
                "relu7 network images/s": round(rates[mode], 1), "network x seeds": round(rates[mode] / rates[base], 2)}
               for mode in MODES]
    text = (f"VGG16 convolutions at 224x224, batch {args.batch}, best of {args.repeats}; {os.cpu_count()} CPU cores "
            f"({platform.machine()}), torch {torch.__version__}, {torch.get_num_threads()} threads.\n\n"
            + markdown_table(summary) + "\n\n" + markdown_table(rows) + "\n")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
