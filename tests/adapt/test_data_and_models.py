"""Domain datasets (named and folders, class-set checks) and DANN models on the paper CNN or a registry backbone."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests_helpers import make_color_folder
from transferlab.adapt import GaninCNN, GradientReversal, build_dann, load_domain_folders, resolve_domain
from transferlab.adapt.data import prepare_named
from transferlab.errors import ConfigError, DataError


def test_ganin_cnn_shapes():
    model, pre, desc = build_dann("ganin", 10)
    assert (pre.crop_size, desc["feature_dim"]) == (28, 768)  # 48 x 4 x 4, as in the paper
    logits, dom = model(torch.zeros(5, 3, 28, 28))
    assert logits.shape == (5, 10) and dom.shape == (5,)
    assert GaninCNN(32).out_features == 48 * 5 * 5
    assert isinstance(model.grl, GradientReversal)
    assert isinstance(build_dann("ganin", 10, reverse=False)[0].grl, torch.nn.Identity)


def test_ganin_errors():
    with pytest.raises(ConfigError, match="at least 16 px"):
        GaninCNN(12)
    with pytest.raises(ConfigError, match="no pretrained weights"):
        build_dann("ganin", 10, weights="imagenet")


def test_dann_on_a_registry_backbone_reverses_gradients_into_the_backbone():
    model, pre, desc = build_dann("digits_cnn", 3, weights="none")
    assert desc["layer"] == "relu_fc2" and desc["feature_dim"] == 128 and pre.crop_size == 32
    x = torch.randn(4, 3, 32, 32)
    model.train()
    # the domain loss alone: with lambda the backbone gets exactly -lambda x the no-GRL gradient
    grads = {}
    for lam in (0.0, 1.0, 2.0):
        model.zero_grad()
        model.eval()  # no dropout / batch-norm updates: identical forward passes
        model.set_lambda(lam)
        model(x)[1].sum().backward()
        grads[lam] = next(p for n, p in model.features.named_parameters() if n.endswith("weight")).grad.clone()
    assert grads[0.0].abs().max() == 0
    torch.testing.assert_close(grads[2.0], 2 * grads[1.0])


def test_registry_backbone_unknown_layer_is_config_error():
    with pytest.raises(ConfigError, match="unknown layer 'relu9'"):
        build_dann("digits_cnn", 3, layer="relu9")


def test_folders_with_different_class_sets_are_a_data_error(tmp_path):
    src = make_color_folder(tmp_path / "src", classes=("red", "green", "blue"), per_class=4)
    tgt = make_color_folder(tmp_path / "tgt", classes=("red", "green", "yellow"), per_class=4)
    _, pre, _ = build_dann("ganin", 3)
    with pytest.raises(DataError, match=r"different class sets: only in source: \['blue'\]; "
                                        r"only in target: \['yellow'\]"):
        load_domain_folders(src, tgt, pre)


def test_unlabelled_target_folder(tmp_path):
    src = make_color_folder(tmp_path / "src", per_class=5)
    tgt = tmp_path / "unlabelled"
    tgt.mkdir()
    for path in list((src / "red").iterdir())[:3] + list((src / "blue").iterdir())[:2]:
        shutil.copy(path, tgt / f"u_{path.name}")
    _, pre, _ = build_dann("ganin", 3, input_size=28)
    data = load_domain_folders(src, tgt, pre)
    assert data.classes == ["blue", "green", "red"] and not data.target_labelled
    assert len(data.target_train) == 5 and len(data.source_train) + len(data.source_test) == 15
    x, label, _ = data.target_train[0]
    assert x.shape == (3, 28, 28) and label == -1


def test_empty_target_and_unknown_names(tmp_path):
    src = make_color_folder(tmp_path / "src", per_class=4)
    (tmp_path / "empty").mkdir()
    _, pre, _ = build_dann("ganin", 3)
    with pytest.raises(DataError, match="holds no usable image"):
        load_domain_folders(src, tmp_path / "empty", pre)
    with pytest.raises(DataError, match="neither a dataset name .* Did you mean: digits-m"):
        resolve_domain("digit-m", tmp_path)
    with pytest.raises(DataError, match="unknown dataset name 'mnistm'.*Did you mean: mnist-m"):
        prepare_named("mnistm", tmp_path)


def test_named_digits_pair_is_written_as_image_folders(tmp_path):
    target = resolve_domain("digits-m", tmp_path, size=16)
    source = resolve_domain("digits", tmp_path, size=16)
    assert target == tmp_path / "digits-16" / "digits-m" and source.parent == target.parent
    assert sorted(p.name for p in (target / "train").iterdir()) == [str(d) for d in range(10)]
    n_train = sum(1 for _ in (target / "train").rglob("*.png"))
    n_test = sum(1 for _ in (source / "test").rglob("*.png"))
    assert (n_train, n_test) == (1257, 540)
    _, pre, _ = build_dann("ganin", 10, input_size=16)
    data = load_domain_folders(source, target, pre)
    assert data.target_labelled and len(data.target_test) == 540
    x_src, x_tgt = data.source_train[0][0], data.target_train[0][0]
    assert x_src.shape == x_tgt.shape == (3, 16, 16)
    assert torch.equal(x_src[0], x_src[2]) and not torch.equal(x_tgt[0], x_tgt[2])  # gray vs colour


def test_digits_domain_data_seed_draws_the_split_and_zero_is_the_benchmark_split():
    from transferlab.adapt import digits_domain_data, digits_domains

    _, pre, _ = build_dann("ganin", 10, input_size=16)
    zero, one = digits_domain_data(pre, 16), digits_domain_data(pre, 16, seed=1)
    assert [len(d) for d in (zero.source_train, zero.target_test)] == [1257, 540]
    assert [len(d) for d in (one.source_train, one.target_test)] == [1257, 540]
    # seed 0 is the split of the named folders (digits_domains' default); another seed is another split
    assert torch.equal(zero.source_train.y, torch.from_numpy(digits_domains(size=16)["digits"]["y_train"]))
    assert not torch.equal(zero.source_train.x, one.source_train.x)
    assert torch.equal(one.source_train.y, one.target_train.y)  # both domains still share the split
