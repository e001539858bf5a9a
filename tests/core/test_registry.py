"""Backbone registry: entries, cut points, weights loading and the seeds' VGG16relu7 equivalence."""

from __future__ import annotations

import pickle
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from transferlab.backbones import get_spec, layer_shapes, list_backbones, load_backbone, make_taps, register
from transferlab.errors import ConfigError, WeightsError

TORCHVISION = ["vgg16", "vgg19", "alexnet", "resnet18", "resnet50", "resnet152", "inception_v3",
               "efficientnet_b0", "efficientnet_v2_s", "convnext_tiny", "vit_b_16", "squeezenet1_0", "squeezenet1_1"]


def test_registry_lists_the_required_backbones():
    assert set(TORCHVISION + ["digits_cnn"]) <= set(list_backbones())


def test_registering_a_name_twice_raises():
    with pytest.raises(ValueError, match="already registered"):
        register(get_spec("vgg16"))


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown backbone 'vgg61'.*vgg16.*Did you mean"):
        get_spec("vgg61")


def test_unknown_layer_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown layer 'relu8' for vgg16; expected one of conv1_1.*relu7"):
        layer_shapes(get_spec("vgg16"), ["relu8"])


def test_vgg16_seed_names_and_shapes():
    spec = get_spec("vgg16")
    assert spec.cut_points["relu7"] == "classifier.4" and spec.cut_points["fc7"] == "classifier.3"
    assert spec.cut_points["conv5_3"] == "features.28" and spec.cut_points["pool5"] == "features.30"
    shapes = layer_shapes(spec, ["conv1_1", "pool1", "conv5_3", "fc6", "relu7", "fc8"])
    assert shapes == {"conv1_1": (64, 224, 224), "pool1": (64, 112, 112), "conv5_3": (512, 14, 14),
                      "fc6": (4096,), "relu7": (4096,), "fc8": (1000,)}
    assert len([n for n in spec.cut_points if n.startswith("conv")]) == 13


def test_vgg16_parameter_count_is_the_seeds():
    with torch.device("meta"):
        model = get_spec("vgg16").build()
    assert sum(p.numel() for p in model.parameters()) == 138_357_544


def test_preprocessing_comes_from_the_weights():
    from torchvision.models import get_model_weights

    for name in TORCHVISION:
        t = get_model_weights(name).DEFAULT.transforms()
        pre = get_spec(name).preprocessing
        assert (pre.resize_size, pre.crop_size) == (t.resize_size[0], t.crop_size[0])
        assert pre.mean == tuple(t.mean) and pre.std == tuple(t.std)
    assert len(get_spec("vgg16").categories) == 1000


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCHVISION)
def test_every_entry_builds_and_every_cut_point_has_its_listed_shape(name):
    spec = get_spec(name)
    backbone = load_backbone(name, "none", seed=0)
    listed = layer_shapes(spec)
    size = spec.preprocessing.crop_size
    with torch.no_grad():
        out = make_taps(spec, backbone.model, list(spec.cut_points))(torch.randn(1, 3, size, size))
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == listed


def test_digits_cnn_cut_points_at_real_size():
    backbone = load_backbone("digits_cnn", "none")
    with torch.no_grad():
        out = make_taps(backbone.spec, backbone.model, list(backbone.spec.cut_points))(torch.randn(2, 3, 32, 32))
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == layer_shapes(backbone.spec)


def test_timm_models_resolve_with_their_own_preprocessing():
    pytest.importorskip("timm")
    spec = get_spec("timm/resnet18")  # timm's default tag a1_in1k is evaluated at its test size, 288 uncropped
    assert (spec.preprocessing.resize_size, spec.preprocessing.crop_size, spec.head) == (288, 288, "fc")
    tv = get_spec("timm/resnet18.tv_in1k").preprocessing  # torchvision's weights in timm: 224 of 256, bilinear
    assert (tv.resize_size, tv.crop_size, tv.interpolation) == (256, 224, "bilinear")
    backbone = load_backbone("timm/resnet18", "none")
    with torch.no_grad():
        out = make_taps(spec, backbone.model, ["pre_logits", "logits"])(torch.randn(1, 3, 64, 64))
    assert out["pre_logits"].shape == (1, 512) and out["logits"].shape == (1, 1000)
    with pytest.raises(ConfigError, match="timm has no model"):
        get_spec("timm/not_a_model_xyz")


def test_any_fx_node_name_is_a_cut_point():
    backbone = load_backbone("resnet18", "none")
    assert layer_shapes(backbone.spec, ["layer3.1.relu_1"], model=backbone.model) == {"layer3.1.relu_1": (256, 14, 14)}


# -- weights -------------------------------------------------------------------------------------

def test_random_weights_are_seeded():
    a = load_backbone("digits_cnn", "none", seed=3).model.state_dict()
    b = load_backbone("digits_cnn", "none", seed=3).model.state_dict()
    c = load_backbone("digits_cnn", "none", seed=4).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.weight"], c["features.0.weight"])


def test_imagenet_weights_offline_give_a_clear_error(monkeypatch, tmp_path):
    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsError, match=r"not cached \(expected .*alexnet-owt-7be5be79.pth\).*--weights none"):
        load_backbone("alexnet", "imagenet")


def test_digits_cnn_has_no_downloadable_weights():
    with pytest.raises(WeightsError, match="no pretrained weights entry; pass --weights PATH"):
        load_backbone("digits_cnn", "imagenet")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weights_file_round_trip(tmp_path, suffix):
    source = load_backbone("digits_cnn", "none", seed=7).model
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": source.state_dict(), "epoch": 3}, path)  # a checkpoint dict works too
    else:
        from safetensors.torch import save_file

        save_file(source.state_dict(), str(path))
    loaded = load_backbone("digits_cnn", path)
    assert loaded.weights_id.startswith("file:")
    assert all(torch.equal(v, loaded.model.state_dict()[k]) for k, v in source.state_dict().items())


def test_weights_file_of_another_architecture_names_the_keys(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(load_backbone("resnet18", "none").model.state_dict(), path)
    with pytest.raises(WeightsError, match=r"holds 122 tensors under key prefixes layer2 \(30\), layer3 \(30\).*"
                                           r"digits_cnn expects 36 under features \(30\), classifier \(6\) "
                                           r"\(0 names in common\): the file uses another naming"):
        load_backbone("digits_cnn", path)
    state = load_backbone("digits_cnn", "none").model.state_dict()
    state.pop("classifier.6.bias")
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"does not fit architecture digits_cnn \(35 tensors against 36\): "
                                           r"missing keys: classifier.6.bias"):
        load_backbone("digits_cnn", path)


def test_weights_file_with_code_is_refused_without_running_it(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('%s').write_text('ran')" % (tmp_path / "pwned"),))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"x": Evil()}, handle)
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_backbone("digits_cnn", path)
    assert not (tmp_path / "pwned").exists()


def test_weights_file_errors(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_backbone("digits_cnn", tmp_path / "missing.pth")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(WeightsError, match="expected one of .pth, .pt, .safetensors"):
        load_backbone("digits_cnn", tmp_path / "w.bin")


# -- the assignment's construction ---------------------------------------------------------------

class VGG16relu7(nn.Module):
    """The seeds' class (assignment 003, section 2.2), verbatim apart from taking vgg16 as argument."""

    def __init__(self, vgg16):
        super().__init__()
        self.features = nn.Sequential(*list(vgg16.features.children()))
        self.classifier = nn.Sequential(*list(vgg16.classifier.children())[:-2])

    def forward(self, x):
        x = self.features(x)
        x = x.view(x.size(0), -1)
        x = self.classifier(x)
        return x


def seeds_preprocess(path):
    """The assignment's code: PIL bilinear resize to 224, /255, CHW, ImageNet mean/std."""
    img = Image.open(path).convert("RGB")
    img = img.resize((224, 224), Image.BILINEAR)
    img = np.array(img, dtype=np.float32) / 255
    img = img.transpose((2, 0, 1))
    mu = torch.Tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    sigma = torch.Tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return (torch.Tensor(img) - mu) / sigma


def test_relu7_features_equal_the_seeds_vgg16relu7(tmp_path):
    from skimage import data

    from transferlab.features import extract_features

    paths = []
    for name in ("chelsea", "camera"):  # a colour photo and a grayscale one (gray -> RGB)
        path = tmp_path / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(path)
        paths.append(path)
    backbone = load_backbone("vgg16", "none", seed=0, preprocessing_mode="squash")
    reference = VGG16relu7(backbone.model).eval()
    with torch.no_grad():
        expected = reference(torch.stack([seeds_preprocess(p) for p in paths])).numpy()
    result = extract_features(paths, backbone, ["relu7"], l2=False, use_cache=False, progress=False, workers=0)
    np.testing.assert_allclose(result.features["relu7"], expected, rtol=1e-4, atol=1e-5)
    normalised = extract_features(paths, backbone, ["relu7"], use_cache=False, progress=False, workers=0)
    np.testing.assert_allclose(normalised.features["relu7"],
                               expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-4, atol=1e-6)


def test_tapping_a_layer_and_its_inplace_relu_together_keeps_both():
    backbone = load_backbone("digits_cnn", "none")
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        alone = make_taps(backbone.spec, backbone.model, ["fc1"])(x)["fc1"]
        both = make_taps(backbone.spec, backbone.model, ["fc1", "relu_fc1", "conv1", "relu1"])(x)
    assert alone.min() < 0 and torch.equal(both["fc1"], alone)
    assert torch.equal(both["relu_fc1"], alone.clamp_min(0))
    assert both["conv1"].min() < 0 <= both["relu1"].min()


def test_weights_entries_own_their_preprocessing_and_the_default_comes_first(tmp_path):
    resnet = get_spec("resnet50")
    assert [w.tag for w in resnet.weights] == ["IMAGENET1K_V2", "IMAGENET1K_V1"]  # torchvision's DEFAULT first
    assert resnet.weights_entry("imagenet") is resnet.weights[0]
    v1, v2 = resnet.weights_entry("IMAGENET1K_V1").preprocessing, resnet.weights_entry("imagenet1k_v2").preprocessing
    assert (v1.resize_size, v2.resize_size, v1.crop_size, v2.crop_size) == (256, 232, 224, 224)
    assert get_spec("vgg16").default_weights.tag == "IMAGENET1K_V1"  # the assignment's vgg16(pretrained=True)
    assert len(get_spec("vgg16").weights_entry("IMAGENET1K_FEATURES").categories) == 0  # headless weights
    with pytest.raises(WeightsError, match=r"resnet50 has no weights 'IMAGENET1K_V9'; expected imagenet, none, "
                                           r"one of IMAGENET1K_V2, IMAGENET1K_V1, or the path"):
        load_backbone("resnet50", "IMAGENET1K_V9")
    # random and file weights take the default entry's preprocessing, or the one they are told
    assert load_backbone("resnet50", "none").preprocessing.resize_size == 232
    told = load_backbone("resnet50", "none@IMAGENET1K_V1")
    assert told.preprocessing.resize_size == 256 and told.preprocessing_source == "IMAGENET1K_V1"
    path = tmp_path / "r18.pth"
    torch.save(load_backbone("resnet18", "none").model.state_dict(), path)
    from_file = load_backbone("resnet18", f"{path}@IMAGENET1K_V1")
    assert from_file.preprocessing_source == "IMAGENET1K_V1" and from_file.categories[0] == "tench"


def test_looking_a_backbone_up_never_changes_the_listing():
    pytest.importorskip("timm")
    before = list_backbones()
    get_spec("timm/resnet18")
    assert list_backbones() == before and "timm/resnet18" not in before and "efficientnet_lite0" in before


def test_timm_cut_points_come_from_feature_info_and_grad_cam_defaults_to_the_last_spatial_one():
    pytest.importorskip("timm")
    spec = get_spec("timm/resnet18")
    assert dict(spec.cut_points) == {"stage1": "act1", "stage2": "layer1", "stage3": "layer2", "stage4": "layer3",
                                     "stage5": "layer4", "features": "layer4", "pre_logits": "global_pool.flatten",
                                     "logits": "fc"}
    assert spec.gradcam_layer == "layer4" and spec.categories[1] == "goldfish"
    assert layer_shapes(spec, ["stage3", "pre_logits"]) == {"stage3": (128, 36, 36), "pre_logits": (512,)}


def test_timm_heads_found_by_module_prefix_and_channels_last_networks_keep_only_head_points():
    pytest.importorskip("timm")
    mobilenet = load_backbone("timm/mobilenetv3_small_100", "none")  # its classifier is timm's own Linear
    with torch.no_grad():
        out = make_taps(mobilenet.spec, mobilenet.model, ["pre_logits", "logits"])(torch.randn(1, 3, 64, 64))
    assert out["pre_logits"].shape == (1, 1024) and out["logits"].shape == (1, 1000)
    swin = get_spec("timm/swin_tiny_patch4_window7_224")  # (N, H, W, C) maps: no stage points, no Grad-CAM
    assert set(swin.cut_points) == {"pre_logits", "logits"} and swin.gradcam_layer is None
    mixer = get_spec("timm/mixer_s16_224")  # no pretrained tag here: its default configuration's preprocessing
    assert mixer.weights == () and mixer.preprocessing.crop_size == 224


def test_a_saved_linear_model_keeps_the_preprocessing_of_the_entry_it_was_trained_with(tmp_path):
    from sklearn.svm import LinearSVC

    from transferlab.classify import LinearProbeModel, load_model

    backbone = load_backbone("resnet18", "none@IMAGENET1K_V1")
    svm = LinearSVC().fit(np.random.default_rng(0).normal(size=(6, 512)), [0, 1] * 3)
    LinearProbeModel(backbone, "pre_logits", "none", True, ["a", "b"], svm, "none@IMAGENET1K_V1").save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.backbone.preprocessing_source == "IMAGENET1K_V1"
    assert loaded.preprocessing == backbone.preprocessing
    resnet50 = load_backbone("resnet50", "none@IMAGENET1K_V1")
    assert resnet50.preprocessing.resize_size == 256  # not the default entry's 232
