"""Offline domain-adaptation benchmark: scikit-learn digits -> the same digits blended with photo patches.

Runs ``transferlab.adapt.run_adapt_study`` (source-only, DANN, DANN without GRL, pseudo-labelling, and
a GRL-factor sweep) over several seeds on the CPU and prints the summary table (mean +- std). The numbers
in ``benchmarks/results/adapt.md`` come from::

    .venv/bin/python benchmarks/adapt.py --seeds 0 1 2 --out runs/bench-adapt

MNIST -> MNIST-M cannot run without network (MNIST and BSDS500 downloads); see docs/adapt.md.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from transferlab.adapt import AdaptConfig, build_dann, digits_domain_data
from transferlab.adapt.study import run_adapt_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--grl-factors", type=float, nargs="*", default=[0.1, 1.0])
    parser.add_argument("--methods", nargs="+", default=["source-only", "dann", "dann-no-grl", "pseudo-label"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    _, pre, _ = build_dann("ganin", 10)
    data = digits_domain_data(pre, 28)
    base = AdaptConfig(epochs=args.epochs, batch_size=32, optimizer="sgd", lr=0.03, grl_factor=0.5, pl_base="dann",
                       pl_rounds=2, pl_epochs=2, pl_threshold=0.95)
    t0 = time.perf_counter()
    result = run_adapt_study(data, base, methods=tuple(args.methods), grl_factors=tuple(args.grl_factors),
                             seeds=tuple(args.seeds), out=args.out,
                             on_run=lambda r: print({k: (round(v, 3) if isinstance(v, float) else v)
                                                     for k, v in r.items()}, flush=True))
    print(f"total {time.perf_counter() - t0:.0f} s on {os.cpu_count()} cores, {args.threads} torch thread(s)")
    print("| variant | target acc | source acc | domain acc, last epoch (source / target test) | domain acc, mean of last 4 epochs |")
    print("|---|---|---|---|---|")
    for s in result["summary"]:
        print(f"| {s['variant']} | {s['target_class_acc_mean']:.3f} ± {s['target_class_acc_std']:.3f} | "
              f"{s['source_class_acc_mean']:.3f} ± {s['source_class_acc_std']:.3f} | "
              f"{s['domain_acc_mean']:.3f} ± {s['domain_acc_std']:.3f} "
              f"({s['source_domain_acc_mean']:.2f} / {s['target_domain_acc_mean']:.2f}) | "
              f"{s['domain_acc_last4_mean']:.3f} ± {s['domain_acc_last4_std']:.3f} |")


if __name__ == "__main__":
    main()
