"""Extraction with 1 process vs N processes under torchrun, over one shared feature cache (issue 16).

Each setting runs ``transferlab extract`` on the same generated photos (benchmarks/extraction.py's
``make_images``) into a fresh cache: once as one process with every core's threads, once under
``torchrun --nproc-per-node N`` with cores/N threads per process. Reported: the extraction's images/s (all images
over rank 0's extraction time: hashing, the ranks' shards, the collective and the merge), the whole command's
wall time (process and network start-up included), each rank's forward count, and the largest difference
between the two settings' features. On a 2-core machine 2 processes cannot be faster than 1 with 2 threads: the
point there is the overhead; the speed-up is for one process per GPU, or per node.

    .venv/bin/python benchmarks/distributed_extraction.py --images 64       # a quick check
    .venv/bin/python benchmarks/distributed_extraction.py --images 2048 --out benchmarks/results/distributed_extraction.md
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from extraction import make_images  # noqa: E402


def extract(data: Path, work: Path, processes: int, args) -> dict:
    """One ``transferlab extract`` run into a fresh cache; its timings and features."""
    out, cache = work / f"out{processes}", work / f"cache{processes}"
    threads = max(1, (os.cpu_count() or 1) // processes)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
    launcher = [] if processes == 1 else ["-m", "torch.distributed.run", "--standalone",
                                          f"--nproc-per-node={processes}"]
    command = [sys.executable, *launcher, "-m", "transferlab", "extract", str(data), "--backbone", args.backbone,
               "--weights", args.weights, "--layer", args.layer, "--device", args.device, "--test-fraction", "0.5",
               "--out", str(out), "--cache-dir", str(cache)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    log = (out / "log.txt").read_text()
    seconds = float(re.search(r"images forwarded in ([\d.]+) s", log).group(1))
    ranks = re.search(r"ranks forwarded \[([\d, ]+)\]", log)
    per_rank = [int(x) for x in ranks.group(1).split(",")] if ranks else [args.images]
    features = np.load(out / "features.npz")
    return {"processes": processes, "threads": threads, "seconds": seconds, "wall": wall, "per_rank": per_rank,
            "X": np.concatenate([features["X_train"], features["X_test"]])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--layer", default="pre_logits")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (nccl: one GPU per process)")
    parser.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tl-dist-bench-") as tmp:
        work = Path(tmp)
        make_images(work / "data", args.images)
        rows = [extract(work / "data", work, p, args) for p in (1, args.processes)]
    close = float(np.abs(rows[0]["X"] - rows[1]["X"]).max())
    lines = [f"{args.backbone} @ {args.layer}, {args.images} images (300x250 JPEG), {args.device}, "
             f"{os.cpu_count()} cores",
             "",
             "| processes | threads each | extraction s | images/s | command wall s | forwarded per rank |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['processes']} | {r['threads']} | {r['seconds']:.2f} | {args.images / r['seconds']:.1f} | "
                     f"{r['wall']:.1f} | {r['per_rank']} |")
    lines += ["", f"features: largest difference {close:.1e} between the two settings (their thread counts differ, so "
                  "float sums run in another order)"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
