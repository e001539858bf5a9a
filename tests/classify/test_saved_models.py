"""One saved-model format: every kind loads through ``load_model``, keeps its preprocessing, and predicts
(or, for a GAN, refuses to in one line)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from transferlab.backbones import Preprocessing
from transferlab.classify import KINDS, SavedModel, load_model
from transferlab.classify.model_file import write_model_folder
from transferlab.cli.main import main
from transferlab.errors import ConfigError, ModelFileError


def _cli(args, capsys):
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().out


def test_every_kind_is_registered_and_an_unknown_kind_is_refused(tmp_path):
    assert set(KINDS) == {"linear", "finetuned", "dann", "gan"}
    write_model_folder(tmp_path / "m", {"kind": "mystery"}, {"x": torch.zeros(1)})
    with pytest.raises(ModelFileError, match=r"unknown kind 'mystery'; this transferlab reads linear, finetuned, "
                                             r"dann, gan"):
        load_model(tmp_path / "m")


@pytest.fixture(scope="module")
def dann_run(tmp_path_factory):
    """``transferlab adapt`` for two epochs (Adam) on the offline digits -> blended-digits task (16 px)."""
    root = tmp_path_factory.mktemp("dann")
    out = root / "run"
    try:
        code = main(["adapt", "--source", "digits", "--target", "digits-m", "--data-root", str(root / "data"),
                     "--size", "16", "--epochs", "2", "--batch-size", "64", "--optimizer", "adam", "--device", "cpu",
                     "--out", str(out)])
    except SystemExit as exc:
        code = exc.code
    assert code in (0, None)
    return out


def test_a_dann_run_predicts_through_load_model_and_the_predict_command(dann_run, tmp_path, capsys):
    from transferlab.data import write_digits_folder

    model = load_model(dann_run / "model")
    assert model.kind == "dann" and isinstance(model, SavedModel) and model.classes == [str(d) for d in range(10)]
    assert (model.preprocessing.crop_size, model.preprocessing.mode) == (16, "squash")
    folder = write_digits_folder(tmp_path / "digits", per_class=3)
    paths = sorted(folder.glob("*/*.png"))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    scores, kept, failures = model.predict_scores([*paths, tmp_path / "broken.png"], device="cpu")
    assert scores.shape == (30, 10) and kept == list(range(30)) and failures[0][0].endswith("broken.png")
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    truth = np.array([int(p.parent.name) for p in paths])
    assert (scores.argmax(axis=1) == truth).mean() >= 0.6  # source-domain digits after two epochs
    code, text = _cli(["predict", str(dann_run / "model"), str(paths[0]), "--json"], capsys)
    assert code in (0, None), text
    assert json.loads(text)["predictions"][0]["class"] in model.classes


def test_each_kind_writes_back_the_preprocessing_it_was_read_with(dann_run, tmp_path):
    model = load_model(dann_run / "model")
    model.save(tmp_path / "again")
    again = load_model(tmp_path / "again")
    assert again.preprocessing == model.preprocessing and again.classes == model.classes
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(again.as_torch_module()(x), model.as_torch_module()(x))


def test_a_finetuned_model_keeps_an_unusual_preprocessing(tmp_path):
    from transferlab.backbones import load_backbone
    from transferlab.finetune.head import replace_head
    from transferlab.finetune.saved import save_finetuned

    backbone = load_backbone("digits_cnn", "none")
    replace_head(backbone.model, backbone.spec, 3)
    pre = Preprocessing(40, 32, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6), "bicubic", "weights", "squash")
    save_finetuned(tmp_path / "m", backbone.model, backbone="digits_cnn", weights_id="none:seed=0",
                   classes=["a", "b", "c"], preprocessing=pre)
    loaded = load_model(tmp_path / "m")
    assert loaded.kind == "finetuned" and loaded.preprocessing == pre
    loaded.save(tmp_path / "again")
    assert load_model(tmp_path / "again").preprocessing == pre


def test_a_gan_loads_as_a_kind_samples_and_refuses_to_classify(tmp_path):
    from transferlab.generate.dcgan import Generator
    from transferlab.generate.models import save_generator

    save_generator(tmp_path / "g", Generator(nz=8, ngf=4, channels=1), {"epochs": 1})
    gan = load_model(tmp_path / "g")
    assert gan.kind == "gan" and gan.classes == []
    assert gan.sample(3, seed=1).shape == (3, 1, 32, 32)
    torch.testing.assert_close(gan.sample(2, seed=1), gan.sample(2, seed=1))
    with pytest.raises(ConfigError, match="GAN generator: it makes images and classifies none"):
        gan.predict_scores([Path("x.png")])


def test_explain_takes_a_dann_model(dann_run, tmp_path):
    from PIL import Image

    from transferlab.explain import ExplainModel, GradCAM

    Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)).save(tmp_path / "x.png")
    model = ExplainModel.from_saved_model(dann_run / "model")
    explanation = GradCAM(model, layer="net.1").attribute(model.load_pixels([tmp_path / "x.png"]))  # the first ReLU
    assert explanation.maps.shape == (1, 16, 16) and torch.isfinite(explanation.maps).all()
    assert model.classes[int(explanation.targets[0])] in [str(d) for d in range(10)]
