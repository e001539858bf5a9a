"""An offline task made of real photographs: which of ten photographed scenes or materials a patch shows.

Ten photographs ship inside the installed dependencies (scikit-image's ``skimage.data`` and
scikit-learn's sample images; nothing is downloaded). Each one is a class:

=============  ==========================================  ==============================================
class          photograph                                  what a patch of it shows
=============  ==========================================  ==============================================
brick          ``skimage.data.brick()`` (512x512, grey)    a brick wall
grass          ``skimage.data.grass()`` (512x512, grey)    grass seen from above
gravel         ``skimage.data.gravel()`` (512x512, grey)   gravel seen from above
moon           ``skimage.data.moon()`` (512x512, grey)     the lunar surface (craters, maria)
deep_sky       ``skimage.data.hubble_deep_field()``        the Hubble deep field: galaxies on black
tissue         ``skimage.data.immunohistochemistry()``     immunohistochemically stained tissue (microscopy)
retina         ``skimage.data.retina()`` (1411x1411)       a fundus photograph: vessels on orange-red
cat            ``skimage.data.chelsea()`` (300x451)        a tabby cat (fur, eyes, whiskers)
coffee         ``skimage.data.coffee()`` (400x600)         a cup of coffee on a saucer, red and white
dahlia         ``sklearn.datasets.load_sample_image``      a dahlia flower (``flower.jpg``) and its leaves
=============  ==========================================  ==============================================

How train and test are kept apart. Each photograph (for the retina: the square inscribed in the fundus
disc, so that no patch is the black surround) is cut into a left and a right half. Training patches are
square crops taken only inside one half (``train_half``, the left by default), test patches only inside
the other: no test pixel was ever seen in training, and no crop straddles the cut. Within one half,
crops may overlap each other. Every crop has a random side (``min_fraction``-``max_fraction`` of the
half's shorter side, at least 64 px), position, horizontal flip, a rotation by a multiple of 90 degrees
for the photographs that have no "up" (grass, gravel, moon, deep_sky, tissue, retina), and a mild
random contrast (x0.75-1.25) and brightness (+-0.08) change; it is resized (bicubic) to ``size`` pixels
and saved as an 8-bit RGB PNG (grey photographs as three equal channels). ``patches.csv`` records, for
every file, its split and its box in the photograph's own pixel coordinates, so the disjointness can be
checked.

What the task asks and why it needs learned features: recognise a material or scene from a patch of
an unseen part of the same photograph, having seen a few patches of the other part. The patches differ
in scale, position, orientation and contrast, so raw pixels (and colour alone: brick, grass, gravel and
moon are grey; dahlia, coffee and the retina share reds) are a weak representation, while ImageNet
features describe textures and object parts (Cimpoi et al. 2015 found them strong for texture and
material recognition). This is a small, easy task for ImageNet features (one photograph per class;
``transferlab demo`` measures it), not a benchmark: it says that the pretrained network transfers, not
how well it would do on a real dataset.

Layout: ``out/train/<class>/<class>_NN.png`` and ``out/test/<class>/<class>_NN.png`` (the fixed-split
layout :func:`~transferlab.data.load_split` reads), plus ``patches.csv``; a marker file records a
complete folder written with the same parameters, which is then reused as it is.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from .._utils import atomic_write_bytes, text_digest


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()
    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)
    return load


def _matplotlib(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from matplotlib import cbook

        with cbook.get_sample_data(name) as handle:
            return np.asarray(Image.open(handle).convert("RGB"))
    return load


@dataclass(frozen=True)
class PhotoSource:
    """A photograph that ships inside an installed package."""

    name: str                                   # class folder / short name
    load: Callable[[], np.ndarray]              # -> uint8 (H, W) or (H, W, 3|4)
    origin: str                                 # where it comes from, for reports
    shows: str                                  # what it shows, in words
    rotate: bool = False                        # no canonical "up": rotate crops by multiples of 90 degrees
    region: tuple[int, int, int, int] | None = None  # (top, bottom, left, right) usable part, else whole

    def array(self) -> np.ndarray:
        """The photograph as uint8 RGB ``(H, W, 3)`` (grey copied to three channels, alpha dropped)."""
        return to_rgb_array(self.load())


PATCH_SOURCES: tuple[PhotoSource, ...] = (
    PhotoSource("brick", _skimage("brick"), "skimage.data.brick()", "a brick wall"),
    PhotoSource("grass", _skimage("grass"), "skimage.data.grass()", "grass seen from above", rotate=True),
    PhotoSource("gravel", _skimage("gravel"), "skimage.data.gravel()", "gravel seen from above", rotate=True),
    PhotoSource("moon", _skimage("moon"), "skimage.data.moon()", "the lunar surface", rotate=True),
    PhotoSource("deep_sky", _skimage("hubble_deep_field"), "skimage.data.hubble_deep_field()",
                "the Hubble deep field: galaxies on black", rotate=True),
    PhotoSource("tissue", _skimage("immunohistochemistry"), "skimage.data.immunohistochemistry()",
                "immunohistochemically stained tissue (microscopy)", rotate=True),
    PhotoSource("retina", _skimage("retina"), "skimage.data.retina()",
                "a fundus photograph of a retina (vessels on orange-red)", rotate=True,
                region=(215, 1190, 215, 1190)),  # the square inscribed in the fundus disc
    PhotoSource("cat", _skimage("chelsea"), "skimage.data.chelsea()", "a tabby cat"),
    PhotoSource("coffee", _skimage("coffee"), "skimage.data.coffee()", "a cup of coffee on a saucer"),
    PhotoSource("dahlia", _sklearn("flower.jpg"), "sklearn.datasets.load_sample_image('flower.jpg')",
                "a dahlia flower and its leaves"),
)

# Whole photographs for ImageNet top-5 and Grad-CAM (not a classification task).
WHOLE_PHOTOS: tuple[PhotoSource, ...] = (
    PhotoSource("cat", _skimage("chelsea"), "skimage.data.chelsea()", "a tabby cat"),
    PhotoSource("coffee", _skimage("coffee"), "skimage.data.coffee()", "a cup of coffee"),
    PhotoSource("rocket", _skimage("rocket"), "skimage.data.rocket()", "a rocket on its launch pad at night"),
    PhotoSource("grace_hopper", _matplotlib("grace_hopper.jpg"), "matplotlib sample_data/grace_hopper.jpg",
                "Grace Hopper in uniform"),
    PhotoSource("astronaut", _skimage("astronaut"), "skimage.data.astronaut()", "astronaut Eileen Collins"),
    PhotoSource("pagoda", _sklearn("china.jpg"), "sklearn.datasets.load_sample_image('china.jpg')",
                "a Chinese pagoda (the Summer Palace)"),
    PhotoSource("dahlia", _sklearn("flower.jpg"), "sklearn.datasets.load_sample_image('flower.jpg')",
                "a dahlia flower"),
)

PATCH_CLASSES: tuple[str, ...] = tuple(s.name for s in PATCH_SOURCES)
MIN_SIDE = 64


def to_rgb_array(image: np.ndarray) -> np.ndarray:
    """Any ``skimage.data``-style array -> uint8 ``(H, W, 3)``."""
    array = np.asarray(image)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array[..., :3])


def half_boxes(source: PhotoSource, shape: tuple[int, int]) -> dict[str, tuple[int, int, int, int]]:
    """``{"left": box, "right": box}``: the two halves of the usable region, ``(top, bottom, left, right)``."""
    top, bottom, left, right = source.region or (0, shape[0], 0, shape[1])
    middle = (left + right) // 2
    return {"left": (top, bottom, left, middle), "right": (top, bottom, middle, right)}


def sample_patch(image: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator, *, size: int,
                 rotate: bool, min_fraction: float, max_fraction: float) -> tuple[np.ndarray, dict]:
    """One random square crop inside ``box`` (augmented as the module docstring says) and its record."""
    top, bottom, left, right = box
    short = min(bottom - top, right - left)
    side = int(round(rng.uniform(min_fraction, max_fraction) * short))
    side = min(short, max(MIN_SIDE, side))
    y = top + int(rng.integers(0, bottom - top - side + 1))
    x = left + int(rng.integers(0, right - left - side + 1))
    crop = image[y:y + side, x:x + side]
    flip = bool(rng.random() < 0.5)
    turns = int(rng.integers(0, 4)) if rotate else 0
    if flip:
        crop = crop[:, ::-1]
    crop = np.rot90(crop, turns)
    pixels = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BICUBIC),
                        np.float32)
    contrast, brightness = float(rng.uniform(0.75, 1.25)), float(rng.uniform(-0.08, 0.08))
    mean = pixels.mean()
    pixels = np.clip((pixels - mean) * contrast + mean + 255.0 * brightness, 0, 255).round().astype(np.uint8)
    record = {"top": y, "left": x, "bottom": y + side, "right": x + side, "flip": int(flip), "turns": turns,
              "contrast": round(contrast, 4), "brightness": round(brightness, 4)}
    return pixels, record


def write_photo_patches(out: Path | str, *, classes: Iterable[str] | None = None, train_per_class: int = 20,
                        test_per_class: int = 20, size: int = 224, seed: int = 0, train_half: str = "left",
                        min_fraction: float = 0.25, max_fraction: float = 0.5) -> Path:
    """Write the patch task as ``out/train/<class>`` + ``out/test/<class>`` (see the module docstring).

    ``train_per_class`` patches per class come from the ``train_half`` of each photograph ("left" or
    "right"), ``test_per_class`` from the other half. A complete folder written with the same parameters
    is reused; one written with other parameters (recognised by its ``patches.csv``) is replaced.
    """
    from ..errors import ConfigError

    out = Path(out)
    by_name = {s.name: s for s in PATCH_SOURCES}
    wanted = list(PATCH_CLASSES if classes is None else classes)
    unknown = [c for c in wanted if c not in by_name]
    if unknown or len(set(wanted)) < 2:
        raise ConfigError(f"photo classes must be at least two of {', '.join(PATCH_CLASSES)}; got {wanted}")
    if train_half not in ("left", "right"):
        raise ConfigError(f"train_half must be 'left' or 'right'; got {train_half!r}")
    if min(train_per_class, test_per_class) < 1 or not 0 < min_fraction <= max_fraction <= 1:
        raise ConfigError("need at least one train and one test patch per class and 0 < min_fraction <= "
                          f"max_fraction <= 1; got {train_per_class}, {test_per_class}, {min_fraction}, {max_fraction}")
    params = {"classes": wanted, "train": train_per_class, "test": test_per_class, "size": size, "seed": seed,
              "train_half": train_half, "fractions": [min_fraction, max_fraction], "version": 1}
    marker = out / f".complete-photos-{text_digest(params)[:16]}"
    if marker.exists():
        return out
    if (out / "patches.csv").exists():  # our own folder, written with other parameters: start again
        for name in ("train", "test"):
            shutil.rmtree(out / name, ignore_errors=True)
        for old in out.glob(".complete-photos-*"):
            old.unlink()
    test_half = "right" if train_half == "left" else "left"
    rows = []
    for class_index, name in enumerate(wanted):
        source = by_name[name]
        image = source.array()
        halves = half_boxes(source, image.shape[:2])
        rng = np.random.default_rng([seed, class_index])
        for split, half, count in (("train", train_half, train_per_class), ("test", test_half, test_per_class)):
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels, record = sample_patch(image, halves[half], rng, size=size, rotate=source.rotate,
                                              min_fraction=min_fraction, max_fraction=max_fraction)
                path = folder / f"{name}_{i:02d}.png"
                Image.fromarray(pixels, mode="RGB").save(path, compress_level=1)
                rows.append({"split": split, "class": name, "file": str(path.relative_to(out)),
                             "source": source.origin, "half": half, **record})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "patches.csv", buffer.getvalue().encode())
    marker.touch()
    return out


def read_patch_records(folder: Path | str) -> list[dict]:
    """The rows of ``patches.csv`` (numbers as ints/floats)."""
    with open(Path(folder) / "patches.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in ("top", "left", "bottom", "right", "flip", "turns"):
            row[key] = int(row[key])
        for key in ("contrast", "brightness"):
            row[key] = float(row[key])
    return rows


def write_whole_photos(out: Path | str, names: Iterable[str] | None = None) -> list[Path]:
    """Write bundled photographs whole (``out/<name>.png``) for ImageNet predictions and Grad-CAM."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    by_name = {s.name: s for s in WHOLE_PHOTOS}
    paths = []
    for name in (names if names is not None else by_name):
        path = out / f"{name}.png"
        if not path.exists():
            Image.fromarray(by_name[name].array(), mode="RGB").save(path, compress_level=1)
        paths.append(path)
    return paths
