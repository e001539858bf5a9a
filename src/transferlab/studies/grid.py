"""Report 001, Figure 1.7: a network cut in its convolutional part *and* in its classifier part.

How we read the figure (section 1.6.1 of report 001): the authors "decapitated" torchvision's VGG16
twice — ``features`` kept up to a convolutional cut (y axis), then VGG's own ``avgpool`` and the
pretrained ``classifier`` kept up to a classifier cut (x axis) — and trained the SVM on that output.
Their best cell, ``ReLU 5_1`` x ``Linear 1``, only makes sense that way: relu5_1's 512x14x14 map is
averaged to the 512x7x7 grid ``classifier[0]`` expects and goes through the pretrained fc6. So:

* rows are the convolutional cut points whose channel count equals the classifier's input channels
  (for VGG16 blocks 4 and 5: relu4_1 ... pool5; earlier blocks have 64-256 channels and cannot feed
  fc6 without new weights, so they are not in the figure);
* the map is adaptive-average-pooled to the classifier's input grid (VGG's ``avgpool``: 7x7; a model
  without ``avgpool`` — ``digits_cnn`` — uses the grid its last feature map has), then flattened;
* columns are the classifier's cut points (fc6, relu6, fc7, relu7, fc8 for VGG); the study adds one
  column "conv" = the convolutional cut itself with the study's ``--pooling`` (no classifier layer).
The cell (last conv cut, relu7) is exactly the network's own relu7 (tested on ``digits_cnn``).

The cells ``"<conv>><cls>"`` are ordinary layers of the registry (``backbones/layers.py`` resolves them,
the one tap service computes them), so ``extract``, ``run`` and every study take them too.
"""

from ..backbones.layers import SEP, GridAxes, grid_axes

__all__ = ["SEP", "GridAxes", "grid_axes"]
