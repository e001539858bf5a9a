"""How long the command line takes to start: `--help`, `run --help`, `backbones`, `layers vgg16`, `import transferlab`.

Run: ``.venv/bin/python benchmarks/startup.py [--src SRC] [--repeats 7] [--label after]``; prints a Markdown
table (median and fastest of the repeats, wall clock of a fresh interpreter each) and whether torch was
imported. ``--src`` measures another source tree with the same interpreter, e.g. the commit before the lazy
imports: ``git archive <commit> src | tar -x -C /tmp/before`` then ``--src /tmp/before/src``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CHILD = r"""
import sys
src, args = sys.argv[1], sys.argv[2:]
if src:
    sys.path.insert(0, src)
if args == ["import"]:
    import transferlab
else:
    from transferlab.cli.main import main
    try:
        main(args)
    except SystemExit:
        pass
print("TORCH", "torch" in sys.modules, file=sys.stderr)
"""

COMMANDS = [["--help"], ["run", "--help"], ["backbones"], ["layers", "vgg16"], ["import"]]


def measure(src: str, args: list[str], repeats: int) -> tuple[list[float], bool]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    times, torch = [], False
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, src, *args], capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0 or "TORCH" not in proc.stderr:
            raise SystemExit(f"{args} failed: {proc.stderr[-2000:]}")
        torch = "TORCH True" in proc.stderr
    return times, torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default="", help="source tree to import transferlab from (default: installed)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--label", default="")
    options = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{options.label or options.src or 'installed'}: {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, load average {load:.1f} at the start")
    print("\n| command | median s | fastest s | imports torch |\n|---|---|---|---|")
    rows = []
    for args in COMMANDS:
        times, torch = measure(options.src, args, options.repeats)
        label = "import transferlab" if args == ["import"] else "transferlab " + " ".join(args)
        rows.append({"command": label, "median_s": statistics.median(times), "min_s": min(times), "torch": torch})
        print(f"| `{label}` | {statistics.median(times):.2f} | {min(times):.2f} | {'yes' if torch else 'no'} |",
              flush=True)
    print(json.dumps(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
