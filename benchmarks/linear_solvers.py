"""Linear probes: scikit-learn's LinearSVC (liblinear) vs the torch solver of the same objective, on features
left on disk.

For each ``--rows`` a synthetic feature set (``--features`` wide, ``--classes`` Gaussian classes around random
unit means, rows L2-normalised like transferlab's features) is written as a ``.npy`` file in ``--dir`` and read
through ``np.load(mmap_mode="r")``, as ``transferlab run`` reads a feature set larger than ``--max-feature-gb``.
Each solver fits in its own process, so that its time and peak memory are its own: the peak RSS (which counts
the file pages the memory map has read, reclaimable page cache) and the peak anonymous RSS (memory the process
owns: what must fit in RAM). liblinear gets the rows copied into RAM (it needs them there, as float64) and runs
only where that fits (``--liblinear-max-rows``). Predictions on held-out rows are compared between the two.

    .venv/bin/python benchmarks/linear_solvers.py --rows 1000 2000 --out benchmarks/results/linear_solvers.md
    .venv/bin/python benchmarks/linear_solvers.py --rows 10000 100000 1000000 --dir /big/disk \
        --out benchmarks/results/linear_solvers.md                               # the full run (8 GB at 10^6)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CHUNK = 50_000


def make_features(path: Path, n: int, d: int, classes: int, seed: int) -> None:
    """``path`` (features) and ``path.labels.npy``: written block by block, never whole in memory."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(1234).standard_normal((classes, d)).astype(np.float32)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    y = rng.integers(0, classes, n)
    for start in range(0, n, CHUNK):
        block = y[start:start + CHUNK]
        rows = 0.15 * means[block] + rng.standard_normal((len(block), d)).astype(np.float32) / np.sqrt(d)
        X[start:start + len(block)] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    X.flush()
    del X
    np.save(str(path) + ".labels.npy", y)


def _memory_sampler(peaks: dict) -> None:
    while True:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(("RssAnon:", "VmRSS:")):
                    key, value = line.split(":")
                    peaks[key] = max(peaks.get(key, 0), int(value.split()[0]) // 1024)
        time.sleep(0.05)


def worker(solver: str, train: str, test: str, C: float, device: str, preds: str, threads: int,
           budget: float | None) -> None:
    """One fit in this process; prints a JSON line (seconds, peak RSS and anonymous RSS in MB)."""
    peaks: dict = {}
    threading.Thread(target=_memory_sampler, args=(peaks,), daemon=True).start()
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    if solver == "torch":  # imported only here: the liblinear process's memory is liblinear's
        import torch

        from transferlab.classify.torch_linear import TorchLinearClassifier

        if threads:
            torch.set_num_threads(threads)
    X = np.load(train, mmap_mode="r")
    y = np.load(train + ".labels.npy")
    X_test = np.load(test, mmap_mode="r")
    start = time.perf_counter()  # imports done: the fit only
    if solver == "liblinear":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LinearSVC(C=C, random_state=0).fit(np.array(X), y)  # liblinear needs the rows in RAM
        method = "liblinear"
    else:
        model = TorchLinearClassifier("squared_hinge", C, device=device, max_memory_gb=budget).fit(X, y)
        method = f"torch {model.method_} ({model._device().type}, {model.n_iter_} iterations)"
    seconds = time.perf_counter() - start
    np.save(preds, model.predict(X_test))
    time.sleep(0.05)
    print(json.dumps({"fit_s": seconds, "peak_rss_mb": peaks.get("VmRSS"), "peak_anon_mb": peaks.get("RssAnon"),
                      "method": method}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--features", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--device", default="auto", help="the torch solver's device (auto: CUDA when present)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads in the torch solver's process (0: torch's default, every core)")
    parser.add_argument("--liblinear-max-rows", type=int, default=200_000,
                        help="run liblinear only up to this many rows (it copies them into RAM as float64)")
    parser.add_argument("--dir", type=Path, default=None, help="where the feature files go (a disk, not tmpfs)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    parser.add_argument("--torch-max-memory-gb", type=float, default=0.0,
                        help="the torch solver's RAM budget for features (0: half the free memory); below the "
                             "feature set's size it trains out of core (minibatch warm start + streamed L-BFGS)")
    parser.add_argument("--worker", nargs=8, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        solver, train, test, C, device, preds, threads, budget = args.worker
        worker(solver, train, test, float(C), device, preds, int(threads), float(budget) or None)
        return
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="linear-solvers-") as folder:
        for n in args.rows:
            train, test = Path(folder) / f"train_{n}.npy", Path(folder) / f"test_{n}.npy"
            start = time.perf_counter()
            make_features(train, n, args.features, args.classes, seed=n)
            make_features(test, min(20_000, max(1000, n // 5)), args.features, args.classes, seed=n + 1)
            print(f"{n:,} x {args.features:,}: data written in {time.perf_counter() - start:.1f} s", flush=True)
            preds = {}
            for solver in ("liblinear", "torch"):
                if solver == "liblinear" and n > args.liblinear_max_rows:
                    continue
                out = Path(folder) / f"preds_{solver}_{n}.npy"
                done = subprocess.run([sys.executable, __file__, "--worker", solver, str(train), str(test),
                                       str(args.C), args.device, str(out), str(args.threads),
                                       str(args.torch_max_memory_gb)], capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"{solver} at {n} rows failed:\n{done.stderr}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                preds[solver] = np.load(out)
                y_test = np.load(str(test) + ".labels.npy")
                rows.append({"rows": n, "features": args.features, "solver": result["method"],
                             "fit_s": round(result["fit_s"], 2), "peak_rss_mb": result["peak_rss_mb"],
                             "peak_anon_mb": result["peak_anon_mb"],
                             "test_acc": round(float(np.mean(preds[solver] == y_test)), 4)})
                print(rows[-1], flush=True)
            if len(preds) == 2:
                rows[-1]["same_predictions"] = round(float(np.mean(preds["liblinear"] == preds["torch"])), 4)
                rows[-2]["same_predictions"] = rows[-1]["same_predictions"]
            for path in Path(folder).glob(f"*_{n}.npy*"):
                path.unlink()
    columns = ["rows", "features", "solver", "fit_s", "peak_rss_mb", "peak_anon_mb", "test_acc", "same_predictions"]
    table = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n" + "".join(
        "| " + " | ".join(str(r.get(c, "")) for c in columns) + " |\n" for r in rows)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# Linear solvers ({args.classes} classes, C={args.C:g})\n\n"
                            f"`{' '.join(['benchmarks/linear_solvers.py', *sys.argv[1:]])}`\n\n{table}")


if __name__ == "__main__":
    main()
