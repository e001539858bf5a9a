"""GAN measurements: training-step time per configuration and the seeds' ablation study on the digits.

Run:  .venv/bin/python benchmarks/gan.py [--epochs 4] [--out runs/bench-gan]
Writes benchmarks/results/gan.md (numbers of this machine: say which when quoting them).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from transferlab.generate import GanConfig, build_pair, discriminator_loss, generator_loss, load_gan_data, run_gan_study
from transferlab.report.tables import markdown_table


def step_time(nz: int, ngf: int, ndf: int, batch: int = 128, repeats: int = 5) -> float:
    """Seconds of one full GAN step (D update + G update) on the CPU, median of ``repeats``."""
    g, d = build_pair("dcgan", nz=nz, ngf=ngf, ndf=ndf, channels=1, classes=10)
    og, od = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    real = torch.rand(batch, 1, 32, 32) * 2 - 1
    times = []
    for _ in range(repeats + 1):
        tic = time.perf_counter()
        z = torch.randn(batch, nz)
        loss_d = discriminator_loss(d.logits(real), d.logits(g(z).detach()))
        od.zero_grad()
        loss_d.backward()
        od.step()
        loss_g = generator_loss(d.logits(g(torch.randn(batch, nz))))
        og.zero_grad()
        loss_g.backward()
        og.step()
        times.append(time.perf_counter() - tic)
    return sorted(times[1:])[repeats // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--imbalance", default="128:8,8:128")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-gan"))
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "gan.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    timing = [{"nz": nz, "ngf": ngf, "ndf": ndf, "batch": 128, "seconds_per_step": round(step_time(nz, ngf, ndf), 4)}
              for nz, ngf, ndf in [(100, 32, 32), (1000, 32, 32), (100, 256, 8), (100, 8, 256), (100, 128, 8)]]
    print(markdown_table(timing))
    pairs = [tuple(int(v) for v in p.split(":")) for p in args.imbalance.split(",")]
    tic = time.perf_counter()
    study = run_gan_study(load_gan_data("digits"), args.out,
                          GanConfig(epochs=args.epochs, batch_size=args.batch_size, device="cpu"),
                          nz_values=(2, 10, 1000), imbalance=pairs, log=print)
    total = time.perf_counter() - tic
    text = [
        "# GAN measurements (benchmarks/gan.py)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, shared with other jobs (times are upper bounds).",
        "",
        "## One training step (D update + G update), CPU, batch 128, 1x32x32",
        "",
        markdown_table(timing),
        f"## The seeds' ablations on the offline digits ({args.epochs} epochs, batch {args.batch_size}, "
        f"{total:.0f} s in all)",
        "",
        "Judge: a small CNN trained on the real digits; held-out accuracy in the study's judge.json. "
        "class_entropy: 1 = every class equally often; max_class_share near 1 = collapse; diversity_ratio: "
        "spread of samples around their class centroid in the judge's feature space over the real one; "
        "frechet_judge: Fréchet distance in the judge's feature space (lower is closer to the real digits); "
        "class_recognition: conditional model only, chance 0.1.",
        "",
        markdown_table(study.rows),
        "## Generator gradient at initialisation (seed question 3)",
        "",
        "G frozen at its DCGAN initialisation, D trained for d_updates Adam steps on real vs fake, then the "
        "norm of G's gradient under both losses on the same noise:",
        "",
        markdown_table(study.saturation),
    ]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text("\n".join(text))
    print(f"-> {args.results}")


if __name__ == "__main__":
    main()
