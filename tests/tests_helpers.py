"""Plain helpers importable from any test (``from tests_helpers import ...``)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def make_color_folder(root, classes=("red", "green", "blue"), per_class=12, size=40, seed=0):
    """A tiny, easily separable RGB dataset: noisy images tinted by class, as ``root/<class>/*.png``."""
    rng = np.random.default_rng(seed)
    tints = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200),
             "yellow": (200, 200, 40), "gray": (120, 120, 120)}
    for c_index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        tint = np.array(tints.get(name, (40 * c_index % 255, 90, 160)), dtype=np.float32)
        for i in range(per_class):
            noise = rng.normal(0, 30, size=(size, size, 3))
            image = np.clip(tint + noise, 0, 255).astype(np.uint8)
            Image.fromarray(image).save(folder / f"{name}_{i:03d}.png")
    return root


def run_main(args, capsys):
    """Run the CLI's ``main`` (with its error handling) and return (exit code, stdout, stderr)."""
    import pytest

    from transferlab.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def write_fake_flowers102(root, per_split=(2, 2, 3), n_classes=3, size=32, seed=0):
    """Flowers-102 laid out as torchvision reads it (``flowers-102/jpg/image_NNNNN.jpg``, ``imagelabels.mat``,
    ``setid.mat`` with ``trnid``/``valid``/``tstid``), ``per_split`` images per class, tinted by class.

    Only the files' md5 check cannot pass (the real files are not here): tests patch
    ``Flowers102._check_integrity``; everything else is torchvision's own loading code."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    base = root / "flowers-102"
    (base / "jpg").mkdir(parents=True)
    labels, ids = [], {"trnid": [], "valid": [], "tstid": []}
    image_id = 0
    for c in range(n_classes):
        for key, n in zip(ids, per_split):
            for _ in range(n):
                image_id += 1
                tint = np.array([(60 + 90 * c) % 256, (200 - 70 * c) % 256, 40 + 60 * c], dtype=np.float32)
                image = np.clip(tint + rng.normal(0, 25, size=(size, size + 8 * c, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(image).save(base / "jpg" / f"image_{image_id:05d}.jpg")
                labels.append(c + 1)  # 1-based, as in the real imagelabels.mat
                ids[key].append(image_id)
    savemat(base / "imagelabels.mat", {"labels": np.array(labels)})
    savemat(base / "setid.mat", {k: np.array(v) for k, v in ids.items()})
    return root
