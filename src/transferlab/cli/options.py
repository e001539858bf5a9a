"""Options shared by several commands, declared once (typer ``Annotated`` aliases)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Backbone = Annotated[str, typer.Option("--backbone", "-b", help="Registry name (see `transferlab backbones`).")]
Weights = Annotated[str, typer.Option(
    "--weights", "-w", help="imagenet (the default weights entry), a weights TAG (`transferlab backbones --weights`), none "
                          "(random, seeded) or PATH to a .pth/.pt/.safetensors; PATH@TAG uses TAG's preprocessing.")]
Layer = Annotated[Optional[str], typer.Option("--layer", "-l", help="Cut point (see `transferlab layers B`); "
                                                                   "default: the backbone's feature layer.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of every random choice.")]
Device = Annotated[str, typer.Option("--device", help="auto|cpu|cuda|mps")]
Out = Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: runs/<command>-<time>).")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]
ExtractionBatchSize = Annotated[Optional[int], typer.Option(
    "--batch-size", min=1, help="Images per forward pass (default: 8 on CPU, where it measured fastest; 32 on a GPU).")]
Workers = Annotated[Optional[int], typer.Option("--workers", min=0, help="DataLoader worker processes "
                                                                         "(default: cores - 1, at most 4; "
                                                                         "none on 2 cores or fewer).")]
TrainPerClass = Annotated[int, typer.Option("--train-per-class", min=1, help="Single-folder datasets: training "
                                                                           "images per class (15 Scene protocol).")]
TestFraction = Annotated[Optional[float], typer.Option("--test-fraction", help="Single-folder datasets: split by "
                                                                               "this test fraction instead.")]
Preprocess = Annotated[str, typer.Option("--preprocess", help="weights (resize + centre crop, the weights' own) or "
                                                            "squash (the assignment's whole-image 224x224 resize).")]
Pooling = Annotated[str, typer.Option("--pooling", help="Spatial pooling of convolutional maps: none|avg|max|spp.")]
L2 = Annotated[bool, typer.Option("--l2/--no-l2", help="L2-normalise each feature vector.")]
Precision = Annotated[str, typer.Option("--precision", help="fp32, or the fast modes bf16|fp16 "
                                                            "(autocast + channels_last).")]
Engine = Annotated[str, typer.Option("--engine", help="What runs the network for features: torch, or openvino "
                                                      "(CPU; fp32 or bf16 via --precision; needs the openvino "
                                                      "extra).")]
Grayscale = Annotated[str, typer.Option("--grayscale", help="Gray images on an RGB network (report 002 Q9): duplicate "
                                                          "(gray copied to R, G, B), sum-filters (a 1-channel first "
                                                          "conv: the pretrained filters summed over RGB); fine-tuning "
                                                          "also: learnt (a trained 1->3 conv in front).")]
CacheDir = Annotated[Optional[Path], typer.Option("--cache-dir", help="Feature cache folder "
                                                                      "(default: the user cache directory).")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the feature cache.")]
MaxFeatureGb = Annotated[float, typer.Option(
    "--max-feature-gb", min=0.0, help="Features held in memory at most (GB); larger feature sets stay on disk, "
                                      "memory-mapped from the cache, and the linear probe trains on them out of core "
                                      "(--solver torch). With --no-cache, larger ones are refused.")]
Solver = Annotated[str, typer.Option(
    "--solver", help="Who fits the linear SVM / logistic regression (the same objective): liblinear "
                     "(scikit-learn's own solvers), torch (L-BFGS, on the GPU when present, out of core on "
                     "memory-mapped features), or auto (liblinear below 32M feature values, torch above).")]
MaxPixels = Annotated[int, typer.Option("--max-pixels", min=1, help="Refuse images larger than this many pixels "
                                                                   "(decompression-bomb guard).")]

# The library's default (transferlab.data.decode.DEFAULT_MAX_PIXELS, PIL's decompression-bomb threshold), written
# here so that --help imports no torch; tests/core/test_startup.py checks that the two agree.
DEFAULT_MAX_PIXELS = 89_478_485
DEFAULT_MAX_FEATURE_GB = 8.0  # transferlab.features.extract.DEFAULT_MAX_FEATURE_GB (tests/classify/test_torch_solver.py)
