"""The same command under torchrun: 2 processes, gloo on CPU, DDP + DistributedSampler."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from transferlab.finetune import FinetunedModel
from transferlab.finetune.distributed import DistContext, all_reduce_sum, init_distributed, shard
from transferlab.training import History, load_checkpoint

ARGS = ["--backbone", "digits_cnn", "--weights", "none", "--epochs", "2", "--batch-size", "4",
        "--test-fraction", "0.25", "--device", "cpu", "--workers", "0", "--freeze", "none", "--no-progress"]


def run(args, **env):
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=300)


@pytest.mark.slow
def test_two_process_gloo_run_covers_the_same_data_as_one_process(tiny_dir, tmp_path):
    single = run(["-m", "transferlab", "finetune", str(tiny_dir), *ARGS, "--out", str(tmp_path / "one")])
    assert single.returncode == 0, single.stderr
    double = run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                  "-m", "transferlab", "finetune", str(tiny_dir), *ARGS, "--out", str(tmp_path / "two")])
    assert double.returncode == 0, double.stderr
    assert double.stdout.count("test accuracy") == 1  # rank 0 reports, rank 1 stays quiet

    one, two = (json.loads((tmp_path / p / "data_coverage.json").read_text()) for p in ("one", "two"))
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert one["n_train"] == two["n_train"] == 18
    assert one["covers_all"] and two["covers_all"] and one["digest"] == two["digest"]
    assert one["per_rank"] == [18] and two["per_rank"] == [9, 9]  # disjoint halves of the same images
    metrics = json.loads((tmp_path / "two/metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["n_test"] == 6  # every test image evaluated exactly once
    rows = History.from_csv(tmp_path / "two/history.csv").rows
    assert [r["train_images"] for r in rows] == [18, 18]
    state = load_checkpoint(tmp_path / "two/checkpoints/last.pt")
    assert len(state["rng"]) == 2 and state["world_size"] == 2  # each rank's RNG is kept for --resume
    assert FinetunedModel.load(tmp_path / "two/model").classes == ["blue", "green", "red"]


def run_or_kill(args, timeout):
    """Like ``run``, but a hang fails the test and leaves no process behind.

    torchrun starts its workers in sessions of their own; SIGTERM makes it stop them before it exits.
    """
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        pytest.fail(f"torchrun did not finish within {timeout} s (a process waits in a collective the others skipped)")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.slow
def test_two_process_run_survives_batches_in_which_no_image_decodes(tiny_dir, tmp_path):
    """Batch size 1 and 3 truncated PNGs per class (their header passes the folder scan): one process gets
    a batch with nothing to train on while the other has an image; both must skip that step together."""
    broken = [tiny_dir / name / f"{name}_{i:03d}.png" for name in ("blue", "green", "red") for i in range(3)]
    for path in broken:
        path.write_bytes(path.read_bytes()[:60])
    args = [*ARGS[:4], "--epochs", "1", "--batch-size", "1", *ARGS[8:], "--out", str(tmp_path / "two")]
    done = run_or_kill(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "transferlab", "finetune", str(tiny_dir), *args], timeout=120)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "two/metrics.json").read_text())
    skipped = json.loads((tmp_path / "two/skipped.json").read_text())  # both processes' failures, gathered
    assert sorted(skipped) == sorted(map(str, broken)) and metrics["world_size"] == 2 and metrics["n_failed"] == 9
    rows = History.from_csv(tmp_path / "two/history.csv").rows
    assert len(rows) == 1 and 0 < rows[0]["train_images"] < 18  # steps with a broken image: both skipped


def test_one_process_context_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed("cpu")
    assert ctx == DistContext(device=torch.device("cpu")) and not ctx.enabled and ctx.is_main
    assert all_reduce_sum([1.0, 2.0], ctx) == [1.0, 2.0]
    assert shard(5, DistContext(rank=1, world_size=2)) == [1, 3]
    assert shard(5, DistContext(rank=0, world_size=2)) == [0, 2, 4]
