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
