"""The feature cache under stress: several processes filling one cache, damaged entries and shards, a cache
directory that refuses writes. Every case ends with the features of a lone, uncached run."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from transferlab.backbones import load_backbone
from transferlab.data import write_digits_folder
from transferlab.features import cache as cache_module
from transferlab.features import extract as extract_module
from transferlab.features import extract_features

LOGGER = "transferlab.features.cache"
N = 36  # 3 classes x 12 images


@pytest.fixture
def paths(tmp_path):
    folder = write_digits_folder(tmp_path / "digits", classes=[0, 1, 2], per_class=12)
    found = sorted(str(p) for p in folder.rglob("*.png"))
    assert len(found) == N
    return found


@pytest.fixture(scope="module")
def lone():
    """Features of a lone run without any cache, per layer (the reference of every test)."""
    cache = {}

    def get(paths, layer="relu_fc2"):
        if layer not in cache:
            result = extract_features(paths, load_backbone("digits_cnn", "none"), [layer], use_cache=False,
                                      progress=False, workers=0)
            cache[layer] = result.features[layer]
        return cache[layer]

    return get


def extract(paths, cache_dir, layers=("relu_fc2",), **kwargs):
    return extract_features(paths, load_backbone("digits_cnn", "none"), list(layers), cache_dir=cache_dir,
                            progress=False, workers=0, **kwargs)


def cache_warnings(caplog):
    records = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    for record in records:
        assert "\n" not in record.getMessage()
    return [r.getMessage() for r in records]


def entry_folders(cache_dir):
    return sorted(p.parent for p in cache_dir.rglob("meta.json"))


def assert_clean(cache_dir, n_entries=1):
    """Only complete entries: no shard, lock or temporary file left."""
    folders = entry_folders(cache_dir)
    assert len(folders) == n_entries
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == ["features.npy", "meta.json", "ok.npy"]


# -- several processes ----------------------------------------------------------------------------------
WORKER = textwrap.dedent("""
    import json, pathlib, sys, time
    import numpy as np
    import torch
    torch.set_num_threads(1)
    from transferlab.features import extract as ex
    from transferlab.backbones import load_backbone
    paths_file, cache, layers, go, out = sys.argv[1:6]
    ex.SHARD_SIZE = 5
    b = load_backbone("digits_cnn", "none")
    b.model.features[0].register_forward_hook(lambda m, i, o: time.sleep(0.05))  # long enough to overlap
    paths = json.loads(pathlib.Path(paths_file).read_text())
    pathlib.Path(out + ".ready").touch()
    while not pathlib.Path(go).exists():
        time.sleep(0.01)
    r = ex.extract_features(paths, b, layers.split(","), batch_size=5, cache_dir=cache, progress=False, workers=0)
    np.savez(out, n_forward=r.n_forward, **r.features)
""")


@pytest.mark.parametrize("layer_sets", [("relu_fc2", "relu_fc2"), ("relu_fc2,pool3", "relu_fc2")])
def test_two_processes_fill_one_cache_at_once(paths, tmp_path, lone, layer_sets):
    cache = tmp_path / "c"
    paths_file = tmp_path / "paths.json"
    paths_file.write_text(json.dumps(paths))
    go = tmp_path / "go"
    outs = [tmp_path / f"out{i}.npz" for i in range(len(layer_sets))]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(paths_file), str(cache), layers, str(go),
                               str(out)], stderr=subprocess.PIPE, text=True)
             for layers, out in zip(layer_sets, outs)]
    try:
        deadline = time.time() + 120
        while not all((tmp_path / f"{out}.ready").exists() for out in outs) and time.time() < deadline:
            time.sleep(0.05)
        go.touch()  # both start together
        errors = [proc.communicate(timeout=300)[1] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert [proc.returncode for proc in procs] == [0, 0], errors
    forwards = []
    for layers, out in zip(layer_sets, outs):
        with np.load(out) as result:
            forwards.append(int(result["n_forward"]))
            for layer in layers.split(","):
                np.testing.assert_allclose(result[layer], lone(paths, layer), atol=1e-6)
    print("images through the network per process:", forwards)
    if layer_sets[0] == layer_sets[1]:
        assert sum(forwards) == N  # every shard computed once, by one of them
    assert_clean(cache, n_entries=len(set(",".join(layer_sets).split(","))))
    again = extract(paths, cache, layers=set(",".join(layer_sets).split(",")))
    assert again.n_forward == 0


def test_a_lock_held_by_another_process_is_waited_for(paths, tmp_path, lone, monkeypatch):
    """Another process holds shard 1's lock: this run computes the other shards, waits, then computes
    shard 1 itself once the lock is released without the shard (its holder died)."""
    monkeypatch.setattr(extract_module, "SHARD_SIZE", 10)
    entry = cache_module.CacheEntry(tmp_path / "c", extract_module._description(
        load_backbone("digits_cnn", "none"), "relu_fc2", "none", True, "fp32"),
        [extract_module.file_digest(p) for p in paths])
    entry.folder.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, time
        fd = os.open({str(entry.lock_path(1))!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(3)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    result = extract(paths, tmp_path / "c", batch_size=10)
    holder.wait()
    np.testing.assert_allclose(result.features["relu_fc2"], lone(paths), atol=1e-6)
    assert result.n_forward == N
    assert_clean(tmp_path / "c")


# -- damaged complete entries -----------------------------------------------------------------------------
def _rewrite_checksum(folder):
    meta = json.loads((folder / "meta.json").read_text())
    meta["checksums"]["features.npy"] = cache_module.file_digest(folder / "features.npy")
    (folder / "meta.json").write_text(json.dumps(meta))


def tamper_values(folder):
    features = np.load(folder / "features.npy")
    features[:, :5] = features[:, :5] * 0.5 + 0.1  # finite, plausible, wrong
    np.save(folder / "features.npy", features)


def wrong_width(folder):
    np.save(folder / "features.npy", np.load(folder / "features.npy")[:, :64])


def wrong_width_with_its_checksum(folder):
    wrong_width(folder)
    _rewrite_checksum(folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["shape"] = [N, 64]
    (folder / "meta.json").write_text(json.dumps(meta))


def truncate(folder):
    data = (folder / "features.npy").read_bytes()
    (folder / "features.npy").write_bytes(data[: len(data) // 2])


def nans_with_their_checksum(folder):
    features = np.load(folder / "features.npy")
    features[3, 7] = np.nan
    np.save(folder / "features.npy", features)
    _rewrite_checksum(folder)  # so that only the finiteness check can catch it


def garbage_sidecar(folder):
    (folder / "meta.json").write_text('{"description": ')


def no_checksums(folder):  # an entry written before checksums existed
    meta = json.loads((folder / "meta.json").read_text())
    del meta["checksums"]
    (folder / "meta.json").write_text(json.dumps(meta))


def missing_ok_file(folder):
    (folder / "ok.npy").unlink()


@pytest.mark.parametrize("damage", [tamper_values, wrong_width, truncate, nans_with_their_checksum, garbage_sidecar,
                                    no_checksums, missing_ok_file])
def test_a_damaged_entry_is_reported_and_recomputed(paths, tmp_path, lone, caplog, damage):
    cache = tmp_path / "c"
    extract(paths, cache)
    damage(entry_folders(cache)[0])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        result = extract(paths, cache)
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1 and "damaged" in warnings[0] and "recomputing" in warnings[0], warnings
    assert result.n_forward == N
    np.testing.assert_allclose(result.features["relu_fc2"], lone(paths), atol=1e-6)
    assert_clean(cache)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        repaired = extract(paths, cache)
    assert repaired.n_forward == 0 and not cache_warnings(caplog)
    np.testing.assert_array_equal(repaired.features["relu_fc2"], result.features["relu_fc2"])


def test_a_forged_width_is_refused_when_the_network_runs(paths, tmp_path, lone, caplog):
    """A features file of another width with a sidecar rewritten to match is caught where the width is known
    (the network ran for another layer of the same call), and recomputed."""
    cache = tmp_path / "c"
    extract(paths, cache)
    folder = entry_folders(cache)[0]
    wrong_width_with_its_checksum(folder)
    entry = cache_module.CacheEntry.__new__(cache_module.CacheEntry)
    entry.__dict__.update(folder=folder, _damaged_meta=None, writable=True, _memory={},
                          description=json.loads((folder / "meta.json").read_text())["description"])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert entry.load(dim=128) is None
    assert len(cache_warnings(caplog)) == 1
    assert entry.finalize(1, None, 128) is None  # no shards: to be computed


# -- damaged shards of an unfinished entry -----------------------------------------------------------------
def interrupted_entry(paths, cache, monkeypatch):
    """An entry left unfinished with shards 0 and 1 (of 10 images) on disk."""
    monkeypatch.setattr(extract_module, "SHARD_SIZE", 10)
    backbone = load_backbone("digits_cnn", "none")
    calls = {"n": 0}

    def interrupt(module, inputs, output):
        calls["n"] += 1
        if calls["n"] == 4:  # the size probe, then two batches of 10 = two shards
            raise KeyboardInterrupt

    backbone.model.features[0].register_forward_hook(interrupt)
    with pytest.raises(KeyboardInterrupt):
        extract_features(paths, backbone, ["relu_fc2"], batch_size=10, cache_dir=cache, progress=False, workers=0)
    shards = sorted(cache.rglob("*.npz"))
    assert [p.name for p in shards] == ["000000.npz", "000001.npz"]
    assert not [p for p in cache.rglob("*") if p.suffix in (".lock", ".tmp")]  # released on the way out
    return shards[0]


def shard_garbage(path):
    path.write_bytes(b"not a zip file at all")


def shard_truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def shard_values(path):
    with np.load(path) as data:
        parts = dict(data)
    parts["features"] = parts["features"] * 0.5
    with open(path, "wb") as handle:
        np.savez(handle, **parts)  # a valid file whose stored checksum no longer matches


def shard_nans_with_their_checksum(path):
    with np.load(path) as data:
        parts = dict(data)
    parts["features"][2, 2] = np.inf
    parts["digest"] = np.array(cache_module._array_digest(parts["features"], parts["ok"], str(parts["failures"])))
    with open(path, "wb") as handle:
        np.savez(handle, **parts)


def shard_wrong_width_with_its_checksum(path):
    with np.load(path) as data:
        parts = dict(data)
    parts["features"] = np.ascontiguousarray(parts["features"][:, :64])
    parts["digest"] = np.array(cache_module._array_digest(parts["features"], parts["ok"], str(parts["failures"])))
    with open(path, "wb") as handle:
        np.savez(handle, **parts)


@pytest.mark.parametrize("damage", [shard_garbage, shard_truncated, shard_values, shard_nans_with_their_checksum,
                                    shard_wrong_width_with_its_checksum])
def test_a_damaged_shard_of_an_unfinished_entry_is_recomputed(paths, tmp_path, lone, caplog, monkeypatch, damage):
    cache = tmp_path / "c"
    damage(interrupted_entry(paths, cache, monkeypatch))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        result = extract(paths, cache, batch_size=10)
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1 and "000000.npz is damaged" in warnings[0], warnings
    assert result.n_forward == N - 10  # shard 1 was kept, shard 0 computed again
    np.testing.assert_allclose(result.features["relu_fc2"], lone(paths), atol=1e-6)
    assert_clean(cache)


# -- a cache directory that refuses writes ------------------------------------------------------------------
def _refuse(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EACCES])
@pytest.mark.parametrize("where", ["every write", "locks", "finalisation", "disk fills after one shard"])
def test_an_unwritable_cache_keeps_the_work(paths, tmp_path, lone, caplog, monkeypatch, code, where):
    monkeypatch.setattr(extract_module, "SHARD_SIZE", 10)
    if where == "every write":
        monkeypatch.setattr(cache_module, "atomic_save", _refuse(code))
    elif where == "locks":
        monkeypatch.setattr(cache_module, "_acquire", _refuse(code))
    elif where == "finalisation":
        monkeypatch.setattr(cache_module.CacheEntry, "_write_complete", _refuse(code))
    else:
        real, calls = cache_module.atomic_save, {"n": 0}

        def save_once(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] > 1:
                _refuse(code)()
            real(*args, **kwargs)

        monkeypatch.setattr(cache_module, "atomic_save", save_once)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        result = extract(paths, tmp_path / "c", batch_size=10)
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1 and "cannot be written" in warnings[0] and "without caching" in warnings[0], warnings
    assert result.n_forward == N
    np.testing.assert_allclose(result.features["relu_fc2"], lone(paths), atol=1e-6)
    assert not entry_folders(tmp_path / "c")  # nothing cached
