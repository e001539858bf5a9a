"""The feature engines (--engine torch|openvino): same features, cached conversions, errors, the commands."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from tests_helpers import make_color_folder, run_main
from transferlab.backbones import load_backbone
from transferlab.errors import ConfigError
from transferlab.features import extract_features
from transferlab.features import openvino_engine
from transferlab.features.precision import cpu_supports_bf16

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One folder of 12 colour images plus an unreadable one, and one model cache for the whole module (each
    conversion is seconds: the tests below convert digits_cnn once per set of layers and pooling)."""
    root = tmp_path_factory.mktemp("engine")
    data = make_color_folder(root / "colors", per_class=4)
    (data / "red" / "broken.png").write_bytes(b"not a png")
    return {"data": data, "paths": sorted(str(p) for p in data.rglob("*.png")), "cache": root / "cache"}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_openvino_fp32_features_equal_torch_and_bad_images_are_skipped_alike(shared):
    backbone = load_backbone("digits_cnn", "none")
    common = dict(pooling="spp", l2=True, cache_dir=shared["cache"], progress=False, workers=0, batch_size=5)
    torch_result = extract_features(shared["paths"], backbone, ["pool2", "relu_fc2"], engine="torch", **common)
    ov_result = extract_features(shared["paths"], backbone, ["pool2", "relu_fc2"], engine="openvino", **common)
    assert ov_result.n_forward == 12 and ov_result.kept.tolist() == torch_result.kept.tolist()
    assert [p for p, _ in ov_result.failures] == [p for p, _ in torch_result.failures] == \
        [str(shared["data"] / "red" / "broken.png")]
    for layer in ("pool2", "relu_fc2"):
        a, b = torch_result.features[layer], ov_result.features[layer]
        assert a.shape == b.shape == ((12, 64 * 5) if layer == "pool2" else (12, 128))
        assert cosines(a, b).min() >= 0.99999
        np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)  # L2 inside the graph
        np.testing.assert_allclose(a, b, atol=1e-5)
    # the engine is part of the feature-cache key: other entries, each served from the cache afterwards
    assert set(ov_result.cache_keys.values()).isdisjoint(torch_result.cache_keys.values())
    again = extract_features(shared["paths"], backbone, ["pool2", "relu_fc2"], engine="openvino", **common)
    assert again.from_cache and again.cache_keys == ov_result.cache_keys


def test_a_second_run_neither_converts_nor_compiles_again(shared, monkeypatch):
    backbone = load_backbone("digits_cnn", "none")
    common = dict(pooling="avg", cache_dir=shared["cache"], progress=False, workers=0, engine="openvino")
    first = extract_features(shared["paths"][:6], backbone, ["relu_fc2"], **common)
    folders = [p.parent for p in (shared["cache"] / "openvino").glob("*/model.xml")]
    description = [json.loads((f / "description.json").read_text()) for f in folders]
    mine = [d for d in description if d["layers"] == ["relu_fc2"] and d["pooling"] == "avg"]
    assert len(mine) == 1 and mine[0]["weights"] == "none:seed=0" and mine[0]["input"] == [3, 32, 32]
    blobs = set((shared["cache"] / "openvino" / "compiled").iterdir())
    assert blobs

    converted = []
    monkeypatch.setattr(openvino_engine, "_convert", lambda *a: converted.append(a) or pytest.fail("converted"))
    second = extract_features(shared["paths"][6:], backbone, ["relu_fc2"], **common)  # other images: forwarded
    assert second.n_forward == 6 and not converted
    assert set((shared["cache"] / "openvino" / "compiled").iterdir()) == blobs  # the compiled blob was reused
    whole = extract_features(shared["paths"], backbone, ["relu_fc2"], pooling="avg", cache_dir=shared["cache"],
                             progress=False, workers=0)
    np.testing.assert_allclose(np.concatenate([first.features["relu_fc2"], second.features["relu_fc2"]]),
                               whole.features["relu_fc2"], atol=1e-5)

    monkeypatch.undo()  # a damaged model cache is converted again, and put right
    folder = [f for f, d in zip(folders, description) if d is mine[0]][0]
    (folder / "description.json").write_text("{damaged")
    third = extract_features(shared["paths"][3:9], backbone, ["relu_fc2"], **common)  # a new feature entry
    assert third.n_forward + len(third.failures) == 6
    assert json.loads((folder / "description.json").read_text()) == mine[0]
    row = dict(zip(whole.kept.tolist(), whole.features["relu_fc2"]))
    np.testing.assert_allclose(third.features["relu_fc2"], [row[3 + i] for i in third.kept], atol=1e-5)

@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bfloat16")
def test_openvino_bf16_stays_close_to_fp32(shared):
    backbone = load_backbone("digits_cnn", "none")
    common = dict(pooling="avg", cache_dir=shared["cache"], progress=False, workers=0)
    fp32 = extract_features(shared["paths"], backbone, ["relu_fc2"], engine="torch", **common)
    bf16 = extract_features(shared["paths"], backbone, ["relu_fc2"], engine="openvino", precision="bf16", **common)
    assert bf16.cache_keys != fp32.cache_keys
    c = cosines(fp32.features["relu_fc2"], bf16.features["relu_fc2"])
    assert 0.99 <= c.min() and c.max() < 1.0 + 1e-6  # close, and not the fp32 numbers (bf16 did run)
    assert not np.allclose(fp32.features["relu_fc2"], bf16.features["relu_fc2"], atol=1e-6)


def test_engine_errors(shared, monkeypatch):
    backbone = load_backbone("digits_cnn", "none")
    paths = shared["paths"][:2]
    with pytest.raises(ConfigError, match="unknown engine 'onnx'; expected one of torch, openvino"):
        extract_features(paths, backbone, ["relu_fc2"], engine="onnx", use_cache=False)
    with pytest.raises(ConfigError, match="--engine openvino runs on the CPU; got --device cuda"):
        extract_features(paths, backbone, ["relu_fc2"], engine="openvino", device="cuda", use_cache=False)
    with pytest.raises(ConfigError, match="fp16 is for GPUs"):
        extract_features(paths, backbone, ["relu_fc2"], engine="openvino", precision="fp16", use_cache=False)
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"needs the openvino package.*pip install 'transferlab\[openvino\]'"):
        extract_features(paths, backbone, ["relu_fc2"], engine="openvino", use_cache=False, progress=False)


def test_commands_take_engine(shared, tmp_path, capsys):
    """extract and run with --engine openvino give torch's features and accuracy; predict uses it too."""
    common = ["-b", "digits_cnn", "-w", "none", "--train-per-class", "2", "-l", "relu_fc2", "--pooling", "avg",
              "--workers", "0", "--cache-dir", str(shared["cache"])]
    for engine in ("torch", "openvino"):
        code, _, err = run_main(["extract", str(shared["data"]), *common, "--engine", engine,
                                 "-o", str(tmp_path / f"x-{engine}")], capsys)
        assert code == 0, err
    config = json.loads((tmp_path / "x-openvino" / "config.json").read_text())
    assert config["engine"] == "openvino" and config["resolved_device"] == "cpu"  # OpenVINO computes on the CPU
    with np.load(tmp_path / "x-torch" / "features.npz") as a, np.load(tmp_path / "x-openvino" / "features.npz") as b:
        np.testing.assert_allclose(a["X_train"], b["X_train"], atol=1e-5)
        assert a["paths_test"].tolist() == b["paths_test"].tolist()
    assert "broken.png" in (tmp_path / "x-openvino" / "skipped.txt").read_text()

    code, _, err = run_main(["run", str(shared["data"]), *common, "--engine", "openvino", "-o", str(tmp_path / "r")],
                            capsys)
    assert code == 0, err
    model = tmp_path / "r" / "model"
    images = [str(shared["data"] / "blue"), str(shared["data"] / "red" / "broken.png")]
    code, out_torch, _ = run_main(["predict", str(model), *images, "--json", "--cache-dir", str(shared["cache"])],
                                  capsys)
    code_ov, out_ov, _ = run_main(["predict", str(model), *images, "--json", "--engine", "openvino",
                                   "--cache-dir", str(shared["cache"])], capsys)
    assert code == code_ov == 0
    torch_rows, ov_rows = json.loads(out_torch), json.loads(out_ov)
    assert [r["class"] for r in ov_rows["predictions"]] == [r["class"] for r in torch_rows["predictions"]]
    np.testing.assert_allclose([r["score"] for r in ov_rows["predictions"]],
                               [r["score"] for r in torch_rows["predictions"]], atol=1e-4)
    assert [s["path"] for s in ov_rows["skipped"]] == images[1:]

    code, _, err = run_main(["extract", str(shared["data"]), *common, "--engine", "tensorrt"], capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: unknown engine 'tensorrt'")


def test_a_one_channel_network_runs_in_openvino(shared):
    """--grayscale sum-filters: the network takes one channel; the converted graph follows the preprocessing."""
    from transferlab.backbones.grayscale import grayscale_backbone

    backbone = grayscale_backbone(load_backbone("digits_cnn", "none"), "sum-filters")
    common = dict(pooling="avg", cache_dir=shared["cache"], progress=False, workers=0, use_cache=False)
    torch_result = extract_features(shared["paths"][:4], backbone, ["pool3"], engine="torch", **common)
    ov_result = extract_features(shared["paths"][:4], backbone, ["pool3"], engine="openvino", **common)
    np.testing.assert_allclose(ov_result.features["pool3"], torch_result.features["pool3"], atol=1e-5)
