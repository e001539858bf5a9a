"""Feature extraction: pooling, L2, one pass for several layers, the cache (hits, invalidation, resume)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from transferlab.backbones import load_backbone
from transferlab.data import load_split
from transferlab.errors import ConfigError, DataError
from transferlab.features import FeatureExtractor, extract_features, extract_split, l2_normalize, pool
from transferlab.features import cache as cache_module
from transferlab.features import extract as extract_module
from transferlab.features.precision import cpu_supports_bf16


def count_forwards(backbone):
    """Count images through the first conv (the FX graph reuses the model's submodules; a conv folded
    with its batch norm is a copy, hooks included)."""
    counter = {"images": 0, "calls": 0}

    def hook(module, inputs, output):
        counter["images"] += inputs[0].shape[0]
        counter["calls"] += 1

    backbone.model.features[0].register_forward_hook(hook)
    return counter


@pytest.fixture
def small_digits(tmp_path):
    from transferlab.data import write_digits_folder

    return write_digits_folder(tmp_path / "digits", classes=[0, 1, 2], per_class=30)


def paths_of(folder):
    return sorted(str(p) for p in folder.rglob("*.png"))


def test_pooling_values():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    assert torch.equal(pool(x, "avg"), x.mean(dim=(2, 3)))
    assert torch.equal(pool(x, "max"), x[:, :, 3, 3])
    assert pool(x, "none").shape == (2, 48)
    spp = pool(x, "spp")
    assert spp.shape == (2, 15) and torch.allclose(spp[:, :3], x.mean(dim=(2, 3)))
    assert torch.allclose(spp[:, 3:7].view(2, 4), x[:, 0].unfold(1, 2, 2).unfold(2, 2, 2).mean(dim=(-1, -2)).view(2, 4))
    tokens = torch.randn(2, 5, 7)
    assert torch.equal(pool(tokens, "avg"), tokens.mean(dim=1))
    with pytest.raises(ConfigError, match="unknown pooling 'sum'"):
        pool(x, "sum")
    v = l2_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert torch.allclose(v, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


def test_several_layers_in_one_forward_pass(small_digits, tmp_path):
    backbone = load_backbone("digits_cnn", "none")
    counter = count_forwards(backbone)
    paths = paths_of(small_digits)
    result = extract_features(paths, backbone, ["relu_fc2", "pool2", "conv1"], pooling="avg", batch_size=32,
                              cache_dir=tmp_path / "c", progress=False, workers=0)
    # one blank image probes the feature sizes for the memory guard, then 90 images in 3 batches
    assert counter["images"] == len(paths) + 1 == 91 and counter["calls"] == 4
    assert {k: v.shape for k, v in result.features.items()} == {"relu_fc2": (90, 128), "pool2": (90, 64),
                                                                "conv1": (90, 32)}
    assert np.allclose(np.linalg.norm(result.features["pool2"], axis=1), 1.0, atol=1e-5)


def test_cache_hit_runs_no_forward_pass(small_digits, tmp_path):
    backbone = load_backbone("digits_cnn", "none")
    counter = count_forwards(backbone)
    kwargs = dict(cache_dir=tmp_path / "c", progress=False, workers=0)
    first = extract_features(paths_of(small_digits), backbone, ["relu_fc2"], **kwargs)
    seen = counter["images"]
    second = extract_features(paths_of(small_digits), backbone, ["relu_fc2"], **kwargs)
    assert counter["images"] == seen and second.n_forward == 0 and second.from_cache
    np.testing.assert_array_equal(first.features["relu_fc2"], second.features["relu_fc2"])
    sidecar = next((tmp_path / "c").rglob("meta.json")).read_text()
    assert '"layer": "relu_fc2"' in sidecar and '"weights": "none:seed=0"' in sidecar


@pytest.mark.parametrize("change", ["layer", "pooling", "l2", "preprocess", "weights", "backbone_width",
                                    "image", "precision"])
def test_each_key_input_invalidates(small_digits, tmp_path, change):
    if change == "precision" and not cpu_supports_bf16():
        pytest.skip("this CPU has no native bfloat16")
    paths = paths_of(small_digits)
    base = dict(layers=["relu_fc2"], pooling="none", l2=True, precision="fp32")
    extract_features(paths, load_backbone("digits_cnn", "none"), **base, cache_dir=tmp_path / "c",
                     progress=False, workers=0)
    backbone = load_backbone("digits_cnn", "none")
    if change == "layer":
        base["layers"] = ["relu_fc1"]
    elif change == "pooling":
        base.update(layers=["pool3"], pooling="avg")
        extract_features(paths, backbone, ["pool3"], cache_dir=tmp_path / "c", progress=False, workers=0)
    elif change == "l2":
        base["l2"] = False
    elif change == "preprocess":
        backbone = load_backbone("digits_cnn", "none", preprocessing_mode="squash")
    elif change == "weights":
        backbone = load_backbone("digits_cnn", "none", seed=1)
    elif change == "backbone_width":
        weights = tmp_path / "w.pth"
        torch.save(backbone.model.state_dict(), weights)
        backbone = load_backbone("digits_cnn", weights)  # same numbers, other identity (a file)
    elif change == "image":
        from PIL import Image

        Image.new("L", (32, 32), 200).save(paths[5])
    elif change == "precision":
        base["precision"] = "bf16"
    again = extract_features(paths, backbone, **base, cache_dir=tmp_path / "c", progress=False, workers=0)
    assert again.n_forward == len(paths)


def test_interrupted_extraction_resumes_where_it_stopped(small_digits, tmp_path, monkeypatch):
    monkeypatch.setattr(extract_module, "SHARD_SIZE", 20)
    paths = paths_of(small_digits)  # 90 images = shards of 20, 20, 20, 20, 10
    backbone = load_backbone("digits_cnn", "none")
    counter = count_forwards(backbone)

    def interrupt_after_three_batches(module, inputs, output):
        if counter["calls"] == 4:  # the blank-image size probe, then three batches
            raise KeyboardInterrupt

    handle = backbone.model.features[0].register_forward_hook(interrupt_after_three_batches)
    with pytest.raises(KeyboardInterrupt):
        extract_features(paths, backbone, ["relu_fc2"], batch_size=10, cache_dir=tmp_path / "c",
                         progress=False, workers=0)
    handle.remove()
    entry_files = sorted(p.name for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert entry_files == ["000000.npz"]  # one complete shard, no partial or temporary file, no features.npy
    counter["images"] = 0
    resumed = extract_features(paths, backbone, ["relu_fc2"], batch_size=10, cache_dir=tmp_path / "c",
                               progress=False, workers=0)
    assert resumed.n_forward == counter["images"] - 1 == 70  # 1: the size probe
    fresh = extract_features(paths, backbone, ["relu_fc2"], batch_size=10, use_cache=False, progress=False,
                             workers=0)
    np.testing.assert_allclose(resumed.features["relu_fc2"], fresh.features["relu_fc2"], atol=1e-6)
    assert not list((tmp_path / "c").rglob("shards"))


@pytest.mark.slow
def test_kill_minus_nine_then_resume(small_digits, tmp_path):
    """A real SIGKILL in the middle of extraction loses only the shard being written."""
    script = textwrap.dedent(f"""
        import time, sys
        from transferlab.features import extract as ex
        from transferlab.backbones import load_backbone
        ex.SHARD_SIZE = 10
        b = load_backbone("digits_cnn", "none")
        b.model.features[0].register_forward_hook(lambda m, i, o: time.sleep(0.3))
        paths = sorted(str(p) for p in __import__("pathlib").Path({str(small_digits)!r}).rglob("*.png"))
        ex.extract_features(paths, b, ["relu_fc2"], batch_size=5, cache_dir={str(tmp_path / 'c')!r},
                            progress=False, workers=0)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while time.time() < deadline and len(list((tmp_path / "c").rglob("*.npz"))) < 2:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    shards = list((tmp_path / "c").rglob("*.npz"))
    assert 2 <= len(shards) < 9
    for shard in shards:  # every visible shard is complete and readable
        with np.load(shard) as data:
            assert data["features"].shape == (10, 128)
    monkey = __import__("transferlab.features.extract", fromlist=["SHARD_SIZE"])
    old, monkey.SHARD_SIZE = monkey.SHARD_SIZE, 10
    try:
        result = extract_features(paths_of(small_digits), load_backbone("digits_cnn", "none"), ["relu_fc2"],
                                  batch_size=5, cache_dir=tmp_path / "c", progress=False, workers=0)
    finally:
        monkey.SHARD_SIZE = old
    assert result.n_forward == 90 - 10 * len(shards)


def test_corrupt_images_are_skipped_and_reported(small_digits, tmp_path):
    bad = small_digits / "1" / "zz_bad.png"
    good = (small_digits / "1" / sorted(os.listdir(small_digits / "1"))[0]).read_bytes()
    bad.write_bytes(good[: len(good) // 2])  # truncated PNG: header fine, data cut
    split = load_split(small_digits, train_per_class=10)
    feats, result = extract_split(split, load_backbone("digits_cnn", "none"), ["relu_fc2"],
                                  cache_dir=tmp_path / "c", progress=False, workers=1)
    assert [p for p, _ in result.failures] == [str(bad)]
    f = feats["relu_fc2"]
    assert len(f.paths_train) + len(f.paths_test) == 90 and str(bad) not in f.paths_test + f.paths_train
    again, _ = extract_split(split, load_backbone("digits_cnn", "none"), ["relu_fc2"], cache_dir=tmp_path / "c",
                             progress=False, workers=0)
    assert [p for p, _ in again["relu_fc2"].skipped] == [str(bad)]  # remembered by the cache entry


def test_features_npz_round_trip(small_digits, tmp_path):
    from transferlab.features import SplitFeatures

    feats, _ = extract_split(load_split(small_digits, train_per_class=10), load_backbone("digits_cnn", "none"),
                             ["relu_fc2"], use_cache=False, progress=False, workers=0)
    f = feats["relu_fc2"]
    loaded = SplitFeatures.load(f.save(tmp_path / "features.npz"))
    assert loaded.X_train.dtype == np.float32 and loaded.y_train.dtype == np.int64
    np.testing.assert_array_equal(loaded.X_test, f.X_test)
    assert loaded.paths_train == f.paths_train and loaded.classes == ["0", "1", "2"]


def test_memory_guard_refuses_huge_flattened_maps(small_digits):
    with pytest.raises(ConfigError, match=r"features would take .* GB .*conv1_1 \(64, 224, 224\).*--pooling avg"):
        extract_features(paths_of(small_digits), load_backbone("vgg16", "none"), ["conv1_1"], max_feature_gb=1,
                         use_cache=False)  # with the cache, features past the limit stay on disk instead


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_prepared_network_runs_in_eval_mode(precision):
    """Deep-copying torchvision's feature extractor (for the bf16 copy) resets it to training mode; a live
    dropout before VGG's relu7 once made bf16 features random (cosine 0.72 to fp32)."""
    from torchvision.models.feature_extraction import create_feature_extractor

    from transferlab.features.precision import prepare_model

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Dropout(0.5),
                              torch.nn.Linear(4 * 6 * 6, 8), torch.nn.ReLU()).eval()
    taps = create_feature_extractor(net, return_nodes={"5": "relu"})
    prepared = prepare_model(taps, precision, torch.device("cpu"))
    assert not any(m.training for m in prepared.modules())


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bfloat16")
def test_bf16_fast_mode_is_deterministic_with_folded_batch_norm_and_dropout(small_digits):
    """digits_cnn has batch norm (folded) and dropout before relu_fc2."""
    backbone = load_backbone("digits_cnn", "none", seed=0)
    paths = paths_of(small_digits)[:16]
    kwargs = dict(use_cache=False, progress=False, workers=0)
    fp32 = extract_features(paths, backbone, ["relu_fc2"], **kwargs).features["relu_fc2"]
    runs = [extract_features(paths, backbone, ["relu_fc2"], precision="bf16", **kwargs).features["relu_fc2"]
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert (fp32 * runs[0]).sum(axis=1).min() > 0.999


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bfloat16")
def test_bf16_fast_mode_stays_close_to_fp32(small_digits):
    backbone = load_backbone("resnet18", "none", seed=0)
    paths = paths_of(small_digits)[:16]
    fp32 = extract_features(paths, backbone, ["pre_logits"], use_cache=False, progress=False, workers=0)
    bf16 = extract_features(paths, backbone, ["pre_logits"], precision="bf16", use_cache=False, progress=False,
                            workers=0)
    cosine = (fp32.features["pre_logits"] * bf16.features["pre_logits"]).sum(axis=1)
    assert cosine.min() > 0.999


def test_precision_errors():
    from transferlab.features.precision import check_precision

    with pytest.raises(ConfigError, match="fp16 is for GPUs"):
        check_precision("fp16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        check_precision("fp8", torch.device("cpu"))


def test_feature_extractor_is_a_scikit_learn_transformer(small_digits, tmp_path):
    paths = paths_of(small_digits)
    labels = [int(p.split("/")[-2]) for p in paths]
    pipe = Pipeline([("features", FeatureExtractor("digits_cnn", weights="none", cache_dir=str(tmp_path))),
                     ("svm", LinearSVC(C=1.0))])
    pipe.fit(paths[::2], labels[::2])
    assert pipe.score(paths[1::2], labels[1::2]) > 0.5
    copy = clone(pipe.named_steps["features"])
    assert copy.get_params()["backbone"] == "digits_cnn" and not hasattr(copy, "backbone_")
    with pytest.raises(DataError, match="could not be read"):
        (tmp_path / "x.png").write_text("nope")
        pipe.named_steps["features"].transform([str(tmp_path / "x.png")])


def test_cache_refuses_a_foreign_sidecar(small_digits, tmp_path):
    from transferlab.errors import CacheError

    backbone = load_backbone("digits_cnn", "none")
    extract_features(paths_of(small_digits), backbone, ["relu_fc2"], cache_dir=tmp_path, progress=False, workers=0)
    meta = next(tmp_path.rglob("meta.json"))
    meta.write_text(meta.read_text().replace('"relu_fc2"', '"relu_fc1"'))
    with pytest.raises(CacheError, match="describes other features"):
        extract_features(paths_of(small_digits), backbone, ["relu_fc2"], cache_dir=tmp_path, progress=False,
                         workers=0)
    assert cache_module.default_cache_dir().name == "features"


def test_a_weights_file_with_another_head_size_extracts_its_logits(small_digits, tmp_path):
    from transferlab.backbones import get_spec

    five_way = get_spec("digits_cnn").build(num_classes=5)
    torch.save(five_way.state_dict(), tmp_path / "five.pth")
    backbone = load_backbone("digits_cnn", tmp_path / "five.pth")
    result = extract_features(paths_of(small_digits)[:8], backbone, ["logits", "relu_fc2"], use_cache=False,
                              progress=False, workers=0)
    assert result.features["logits"].shape == (8, 5) and result.features["relu_fc2"].shape == (8, 128)


def test_no_paths_is_a_clear_error():
    with pytest.raises(DataError, match="no images to extract"):
        extract_features([], load_backbone("digits_cnn", "none"), ["relu_fc2"], use_cache=False)


def test_cpu_defaults_follow_the_measurements(monkeypatch):
    from transferlab.features.extract import default_batch_size, default_workers

    assert default_batch_size(torch.device("cpu")) == 8 and default_batch_size(torch.device("cuda")) == 32
    for cores, workers in [(1, 0), (2, 0), (4, 3), (16, 4)]:
        monkeypatch.setattr(extract_module.os, "cpu_count", lambda: cores)
        assert default_workers() == workers
