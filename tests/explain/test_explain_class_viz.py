import pytest
import torch

from transferlab.errors import ConfigError
from transferlab.explain import ClassVisualizer
from transferlab.explain.class_viz import blur


@pytest.mark.parametrize("target", ["red", "green", 2])
def test_class_visualisation_raises_the_target_score(trained, target):
    viz = ClassVisualizer(trained, iterations=60, lr=1.0, l2_reg=1e-3, blur_every=10, seed=0)
    result = viz.visualize(target)
    scores = torch.tensor(result.scores)
    windows = [float(w.mean()) for w in scores.chunk(4)]
    # measured (green): window means 3.6, 14.2, 24.3, 33.4 -- strictly increasing on average
    assert all(b > a for a, b in zip(windows, windows[1:])), windows
    assert result.final_score > scores[0]
    assert result.image.shape == (3, 16, 16)
    assert float(result.image.min()) >= 0 and float(result.image.max()) <= 1
    assert [t for t, _ in result.snapshots] == [0, 12, 24, 36, 48, 60]
    expected = trained.classes.index(target) if isinstance(target, str) else target
    assert result.target == expected
    assert int(trained.predict(result.image[None])[0]) == expected  # the image now looks like the class


def test_class_visualisation_from_an_image_and_seeding(trained):
    init = torch.full((3, 16, 16), 0.45)
    a = ClassVisualizer(trained, iterations=8, seed=1).visualize("blue", init=init)
    b = ClassVisualizer(trained, iterations=8, seed=1).visualize("blue", init=init)
    assert torch.equal(a.image, b.image)
    torch.testing.assert_close(a.snapshots[0][1], init)  # the strip starts from the given image
    predicted = ClassVisualizer(trained, iterations=3).visualize(None, init=init)  # its predicted class
    assert predicted.target == int(trained.predict(init[None])[0])


def test_class_visualisation_errors(trained):
    with pytest.raises(ConfigError, match="needs a target class"):
        ClassVisualizer(trained, iterations=2).visualize(None)
    with pytest.raises(ConfigError, match="iterations >= 1"):
        ClassVisualizer(trained, iterations=0)
    with pytest.raises(ConfigError, match="unknown class 'cyan'"):
        ClassVisualizer(trained, iterations=2).visualize("cyan")


def test_blur_smooths_and_keeps_the_mean():
    img = torch.zeros(1, 3, 9, 9)
    img[..., 4, 4] = 1.0
    out = blur(img, 1.0)
    assert out.shape == img.shape
    assert float(out[..., 4, 4].max()) < 1.0 and float(out[..., 4, 5].min()) > 0
    torch.testing.assert_close(out.sum(), img.sum(), rtol=1e-4, atol=1e-4)
