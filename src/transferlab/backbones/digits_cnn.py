"""``digits_cnn``: a small CNN for 32x32 images, the offline stand-in for an ImageNet network.

The demo pretrains it on half of scikit-learn's digits (the "source task") and saves the weights;
``--weights PATH`` then loads them like any other backbone. Its penultimate ReLU ``relu_fc2`` plays
the role of VGG16's ``relu7``.
"""

from __future__ import annotations

from torch import nn

from .registry import register
from .spec import BackboneSpec, Preprocessing

DIGIT_CLASSES = tuple(str(d) for d in range(10))


class DigitsCNN(nn.Module):
    """conv-bn-relu x5 with three max-pools (32 -> 4), then fc 2048 -> 256 -> 128 -> classes."""

    def __init__(self, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        w = width
        self.features = nn.Sequential(
            *block(3, w), *block(w, w), nn.MaxPool2d(2),
            *block(w, 2 * w), *block(2 * w, 2 * w), nn.MaxPool2d(2),
            *block(2 * w, 4 * w), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * w * 16, 256), nn.ReLU(inplace=True), nn.Dropout(0.3),
            nn.Linear(256, 128), nn.ReLU(inplace=True), nn.Linear(128, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


CUT_POINTS = {
    "conv1": "features.0", "relu1": "features.2", "conv2": "features.3", "relu2": "features.5", "pool1": "features.6",
    "conv3": "features.7", "relu3": "features.9", "conv4": "features.10", "relu4": "features.12", "pool2": "features.13",
    "conv5": "features.14", "relu5": "features.16", "pool3": "features.17",
    "fc1": "classifier.1", "relu_fc1": "classifier.2", "fc2": "classifier.4", "relu_fc2": "classifier.5",
    "pre_logits": "classifier.5", "logits": "classifier.6",
}


def build_digits_cnn(num_classes: int | None = None) -> DigitsCNN:
    return DigitsCNN(num_classes=num_classes or len(DIGIT_CLASSES))


def register_builtins() -> None:
    """Add ``digits_cnn`` to the registry (called by the registry on its first use)."""
    register(BackboneSpec(
        name="digits_cnn", build=build_digits_cnn,
        input_preprocessing=Preprocessing(resize_size=32, crop_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        cut_points=CUT_POINTS, default_layer="relu_fc2", head="classifier.6", gradcam_layer="features.16",
        input_categories=DIGIT_CLASSES, family="transferlab",
        description="small 32x32 CNN; pretrained offline by `transferlab demo` (use --weights PATH)",
    ))
