"""Extraction shared by torchrun's ranks over one feature cache (issue 16): 2 real CPU processes with gloo.

The library tests start the ranks with ``torch.multiprocessing`` and the environment torchrun sets
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT), with 8-image shards so a tiny folder has several; the
command-line test runs ``torchrun --nproc-per-node 2 -m transferlab extract`` itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from tests_helpers import make_color_folder
from transferlab.backbones import load_backbone
from transferlab.features import extract as extract_module
from transferlab.features import extract_features
from transferlab.features.cache import CacheEntry

SHARD = 8
LAYER = "relu_fc2"
OPTIONS = {"device": "cpu", "workers": 0, "progress": False, "batch_size": 4}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _paths(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.png"))


def _worker(rank: int, world: int, port: int, data: str, out: str, task: str) -> None:
    """One rank, as torchrun would start it."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), HF_HUB_OFFLINE="1")
    torch.set_num_threads(1)
    extract_module.SHARD_SIZE = SHARD
    from transferlab.features.distributed import ExtractionGroup

    out_dir, cache = Path(out), Path(out) / "cache"
    save = CacheEntry.save_shard

    def save_then(self, *args, **kwargs):
        save(self, *args, **kwargs)
        if task == "kill" and rank == 1:  # rank 1 dies (SIGKILL) right after writing its first shard
            os.kill(os.getpid(), signal.SIGKILL)
        # a shard takes a while (rank 0 slower when killing): a rank late by a few milliseconds on a busy
        # machine still finds its own shard unclaimed
        time.sleep(1.0 if task == "kill" else 0.3)

    CacheEntry.save_shard = save_then
    backbone = load_backbone("digits_cnn", "none", seed=0)
    with ExtractionGroup("cpu"):
        result = extract_features(_paths(Path(data)), backbone, [LAYER], cache_dir=cache, **OPTIONS)
    np.savez(out_dir / f"rank{rank}.npz", n_forward=result.n_forward, per_rank=np.array(result.per_rank_forward),
             features=result.features.get(LAYER, np.zeros((0, 0))), kept=result.kept)
    if task != "verbs":
        return
    from transferlab.classify.run import run_linear
    from transferlab.studies.runner import study

    options = {"backbone": "digits_cnn", "weights": "none", "test_fraction": 0.25, "cache_dir": str(cache), **OPTIONS}
    metrics = run_linear(data, out_dir / "run", options, {"C": 1.0})
    result = study("C", data, options, {"c_grid": (0.1, 1.0), "cv_folds": 2}, out=out_dir / "study", progress=False)
    (out_dir / f"verbs{rank}.json").write_text(json.dumps({"metrics": bool(metrics), "study": result is not None}))


def _spawn(data: Path, out: Path, task: str) -> None:
    # forked, not spawned: the ranks need not import torch again (seconds each on 2 cores)
    mp.start_processes(_worker, args=(2, _free_port(), str(data), str(out), task), nprocs=2, join=True,
                       start_method="fork")


@pytest.fixture
def folder(tmp_path):
    """3 classes x 8 images of 32 px: 24 images, three 8-image shards."""
    return make_color_folder(tmp_path / "data", per_class=8, size=32)


def _alone(data: Path, monkeypatch, **options):
    monkeypatch.setattr(extract_module, "SHARD_SIZE", SHARD)
    backbone = load_backbone("digits_cnn", "none", seed=0)
    return extract_features(_paths(data), backbone, [LAYER], **{**OPTIONS, **options})


def test_two_ranks_share_the_shards_and_give_the_features_of_one_process(folder, tmp_path, monkeypatch):
    out = tmp_path / "two"
    out.mkdir()
    _spawn(folder, out, "verbs")
    alone = _alone(folder, monkeypatch, use_cache=False)
    rank0, rank1 = (np.load(out / f"rank{r}.npz") for r in (0, 1))
    np.testing.assert_allclose(rank0["features"], alone.features[LAYER], rtol=0, atol=1e-6)
    assert rank0["features"].shape == (24, 128) and rank1["features"].size == 0  # features on rank 0 only
    # every image forwarded once, by one of the ranks; each rank took its shards first (0, 2 | 1) and
    # helped with the rest, so both forwarded some
    per_rank = rank0["per_rank"].tolist()
    assert sum(per_rank) == 24 and min(per_rank) >= SHARD and per_rank == rank1["per_rank"].tolist()
    assert int(rank0["n_forward"]) == 24 and int(rank1["n_forward"]) == per_rank[1]  # rank 0 counts them all
    # the same features a second time: a full cache hit on every rank, found by rank 0
    assert not any((out / "cache").rglob("shards/*.npz"))
    # run and study: one folder each, written by rank 0; rank 1 helped extract and returned
    verbs = [json.loads((out / f"verbs{r}.json").read_text()) for r in (0, 1)]
    assert verbs == [{"metrics": True, "study": True}, {"metrics": False, "study": False}]
    metrics = json.loads((out / "run/metrics.json").read_text())
    assert metrics["n_test"] == 6 and metrics["images_forwarded"] == 0  # the union of both splits was cached
    assert json.loads((out / "study/summary.json").read_text())["conditions"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["cache", "rank0.npz", "rank1.npz", "run", "study",
                                                     "verbs0.json", "verbs1.json"]


def test_a_killed_rank_leaves_its_finished_shards_and_the_rest_is_redone_on_rerun(folder, tmp_path, monkeypatch):
    out = tmp_path / "killed"
    out.mkdir()
    with pytest.raises(mp.ProcessExitedException):
        _spawn(folder, out, "kill")
    shards = sorted(p.name for p in (out / "cache").rglob("shards/*.npz"))
    assert "000001.npz" in shards and len(shards) < 3  # rank 1's first shard survived; the entry is not complete
    again = _alone(folder, monkeypatch, cache_dir=out / "cache")
    assert again.n_forward == 24 - SHARD * len(shards)  # only the missing shards are computed
    alone = _alone(folder, monkeypatch, use_cache=False)
    np.testing.assert_allclose(again.features[LAYER], alone.features[LAYER], rtol=0, atol=1e-6)


def test_torchrun_extract_writes_one_run_folder_from_rank_0(tmp_path, monkeypatch):
    """``torchrun --nproc-per-node 2 -m transferlab extract`` (which wrote two folders, or crashed on a shard
    the other process was merging, before extraction was shared)."""
    data = make_color_folder(tmp_path / "data", per_class=4, size=32)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "transferlab",
            "extract", str(data), "--backbone", "digits_cnn", "--weights", "none", "--device", "cpu", "--workers",
            "0", "--test-fraction", "0.25", "--cache-dir", str(tmp_path / "cache")]
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("X_train (9, 128)") == 1  # rank 0 reports, rank 1 stays quiet
    (run,) = (tmp_path / "runs").iterdir()
    log = (run / "log.txt").read_text()
    # 12 images: one shard, rank 0's (s % 2 == 0) unless rank 1, done with its none, took it first
    assert "torchrun: 2 ranks forwarded [12, 0] images" in log or "torchrun: 2 ranks forwarded [0, 12] images" in log
    saved = np.load(run / "features.npz")
    alone = _alone(data, monkeypatch, use_cache=False)
    paths = _paths(data)
    rows = [paths.index(p) for p in saved["paths_train"]]
    np.testing.assert_allclose(saved["X_train"], alone.features[LAYER][rows], rtol=0, atol=1e-6)
