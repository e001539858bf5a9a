"""Helpers shared by the inspection tests (importable as ``inspection_helpers``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_odd_folder(root: Path) -> Path:
    """cat: 3 RGB 48x40 + gray 32x32 + empty .jpg + truncated .png; dog: 3 RGB 48x40 + RGBA 32x32 +
    16-bit 20x30 + a text file + a text file named .jpg; plus README.txt at the top."""
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(root / "cat" / "gray.png")
    Image.fromarray(rng.integers(0, 255, (32, 32, 4), dtype=np.uint8)).save(root / "dog" / "rgba.png")
    Image.fromarray(rng.integers(0, 65535, (30, 20), dtype=np.uint16)).save(root / "dog" / "deep16.png")
    (root / "cat" / "empty.jpg").write_bytes(b"")
    data = (root / "cat" / "0.png").read_bytes()
    (root / "cat" / "trunc.png").write_bytes(data[: len(data) // 2])
    (root / "dog" / "notes.txt").write_text("hello")
    (root / "dog" / "fake.jpg").write_text("not a jpeg")
    (root / "README.txt").write_text("about this dataset")
    (root / ".DS_Store").write_bytes(b"\x00")  # hidden: ignored, not reported
    return root
