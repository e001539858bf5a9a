"""How long `transferlab inspect` takes and how much memory it allocates (meta device vs a real CPU build).

Run: ``.venv/bin/python benchmarks/inspection.py`` -> writes ``benchmarks/results/inspection.md``.
Each backbone is measured in a fresh subprocess so the peak resident memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(2)
from transferlab.inspection.architecture import inspect_architecture, summarize_model
from transferlab.backbones import get_spec
name, mode = sys.argv[1], sys.argv[2]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if mode == "meta":
    s = inspect_architecture(name)
else:  # the same table from a real CPU model: allocate + initialise weights, zero input
    spec = get_spec(name)
    model = spec.build()
    size = spec.preprocessing.crop_size
    s = summarize_model(model, (3, size, size), name=name)
seconds = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "rss_growth_mb": (after - before) / 1024, "params": s.total_params,
                  "macs": s.total_macs}))
"""


def measure(name: str, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, name, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    names = ["vgg16", "vgg19", "resnet50", "inception_v3", "vit_b_16"]
    lines = ["# transferlab inspect: meta device vs real CPU build", "",
             f"Machine: {platform.processor() or platform.machine()}, torch threads 2, shared CPU (other jobs "
             "running: timings are upper bounds). Peak RSS growth = ru_maxrss after - before, in a fresh process.",
             "", "| backbone | params | meta: s | meta: RSS growth MB | cpu build: s | cpu build: RSS growth MB |",
             "|---|---|---|---|---|---|"]
    for name in names:
        meta, cpu = measure(name, "meta"), measure(name, "cpu")
        assert meta["params"] == cpu["params"] and meta["macs"] == cpu["macs"]
        lines.append(f"| {name} | {meta['params']:,} | {meta['seconds']:.3f} | {meta['rss_growth_mb']:.0f} | "
                     f"{cpu['seconds']:.2f} | {cpu['rss_growth_mb']:.0f} |")
        print(lines[-1], flush=True)
    path = Path(__file__).parent / "results" / "inspection.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
