"""Sampling a trained generator: a grid (conditional: one row per class, one column per noise vector,
seed question 9: the noise then carries the style, the label the class) and optional PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .._utils import write_json
from .grids import save_grid, to_uint8
from .models import generate, is_conditional, load_generator


def draw(generator: torch.nn.Module, *, n: int = 64, per_class: int = 8, seed: int = 0
         ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Samples ``(images, labels or None, grid columns)``; conditional: ``classes x per_class``, row-major."""
    g = torch.Generator().manual_seed(seed)
    if is_conditional(generator):
        z = torch.randn(per_class, generator.nz, generator=g).repeat(generator.classes, 1)
        labels = torch.arange(generator.classes).repeat_interleave(per_class)
        return generate(generator, z, labels), labels, per_class
    return generate(generator, torch.randn(n, generator.nz, generator=g)), None, 0


def write_samples(run: Path | str, out: Path | str, *, n: int = 64, per_class: int = 8, columns: int = 8,
                  images: bool = False, seed: int = 0) -> dict[str, Any]:
    """Write ``out/samples.png`` (+ ``out/images/<class>/NNNN.png`` with ``images``) and ``samples.json``."""
    from PIL import Image

    generator, meta = load_generator(run)
    x, labels, grid_cols = draw(generator, n=n, per_class=per_class, seed=seed)
    out = Path(out)
    grid = save_grid(x, out / "samples.png", columns=grid_cols or columns)
    names = meta.get("classes") or [str(i) for i in range(getattr(generator, "classes", 1))]
    if images:
        for i, array in enumerate(to_uint8(x)):
            cls = names[int(labels[i])] if labels is not None else "samples"
            folder = out / "images" / cls
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(folder / f"{i:04d}.png")
    info = {"run": str(run), "count": int(x.shape[0]), "seed": seed, "grid": str(grid),
            "rows": "classes " + ", ".join(names) if labels is not None else "samples"}
    write_json(out / "samples.json", info)
    return info
