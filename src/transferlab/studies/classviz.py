"""``transferlab study classviz``: class visualisation over learning rate x iterations x L2 weight x blur.

Report 001 (section 2.6.2, Figs. 2.7-2.15) varies the iterations (500/1000/2000), the L2 regularisation
weight (1e-1 ... 1e-5), the learning rate (1, 5, 9) and the blurring interval (none, every 2 steps) of the
practical's class visualisation (Simonyan et al. 2014; Yosinski et al. 2015 regularisers); report 002 (Q9) shows
a learning rate x iterations grid. This study runs that grid for any registry backbone or saved model, with
one more axis, the start: random noise and/or images (``--init``).

Each cell is one :class:`~transferlab.studies.runner.Condition`; the shared runner appends each finished cell
to ``results.jsonl`` so an interrupted study resumes cell by cell. Cells that differ only in their number of
iterations share one trajectory (same seed, same steps): the setting runs once for its largest iteration count and
the smaller ones are its checkpoints, which are exactly what a shorter run would give. Outputs: the table
(``classviz.csv``/``.md``: final class score and probability per cell), ``grid.png`` (a row per setting, a column
per iteration count), ``snapshots.png`` (each setting at the ``--snapshots`` iterations) and every image under
``cells/``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from .runner import Condition, Study, StudyResult

NOISE = "noise"
VERB = "transferlab.studies.classviz:study_classviz"


def _fmt(value: float) -> str:
    return f"{value:g}"


class ClassVizStudy(Study):
    """The grid of class visualisations (see the module docstring).

    Parameters
    ----------
    model : the :class:`~transferlab.explain.ExplainModel` to visualise.
    target : class name or index.
    lrs, iterations, l2_regs, blur_every : the four axes (``blur_every`` 0 = never).
    inits : ``"noise"`` and/or image paths (the start of each row).
    snapshots : iterations at which every setting's image is also kept (``snapshots.png``).
    blur_sigma, jitter, seed : as :class:`~transferlab.explain.ClassVisualizer`.
    identity : what names the model in the resume fingerprint (its name and weights).
    """

    name = "classviz"

    def __init__(self, model, target: str | int, *, lrs: Sequence[float] = (1.0, 5.0, 9.0),
                 iterations: Sequence[int] = (100, 200), l2_regs: Sequence[float] = (1e-3,),
                 blur_every: Sequence[int] = (10,), inits: Sequence[str] = (NOISE,), snapshots: Sequence[int] = (),
                 blur_sigma: float = 0.5, jitter: int | None = None, seed: int = 0,
                 identity: dict[str, Any] | None = None) -> None:
        from ..explain.target import resolve_class

        axes = {"--lr": lrs, "--iterations": iterations, "--l2-reg": l2_regs, "--blur-every": blur_every,
                "--init": inits}
        for option, values in axes.items():
            if not values:
                raise ConfigError(f"{option} needs at least one value; got none")
        if min(iterations) < 1 or min(lrs) <= 0 or min(l2_regs) < 0 or min(blur_every) < 0:
            raise ConfigError(f"class visualisation needs iterations >= 1, lr > 0, l2 weight >= 0 and blur "
                              f"interval >= 0; got --iterations {list(iterations)}, --lr {list(lrs)}, --l2-reg "
                              f"{list(l2_regs)}, --blur-every {list(blur_every)}")
        self.model, self.seed = model, seed
        self.target = resolve_class(target, model.classes)
        self.lrs, self.iterations = sorted(set(map(float, lrs))), sorted(set(map(int, iterations)))
        self.l2_regs, self.blur_every = sorted(set(map(float, l2_regs))), sorted(set(map(int, blur_every)))
        self.inits = list(dict.fromkeys(str(i) for i in inits))
        self.snapshots = sorted({int(s) for s in snapshots if 1 <= int(s) <= max(self.iterations)})
        self.blur_sigma, self.jitter = blur_sigma, jitter
        self.identity = identity or {"model": model.name}
        self.out: Path | None = None
        self._cache: dict[str, dict[int, tuple[Any, float, float]]] = {}
        self._init_pixels: dict[str, Any] = {}
        for init in self.inits:
            if init != NOISE:
                self._init_pixels[init] = model.load_pixels([init])[0]  # a bad image fails before any work

    # ---------------------------------------------------------------- the grid
    def _settings(self) -> list[tuple[str, float, int, float]]:
        return list(itertools.product(self.inits, self.l2_regs, self.blur_every, self.lrs))

    def _setting_key(self, init: str, l2: float, blur: int, lr: float) -> str:
        start = NOISE if init == NOISE else f"init{self.inits.index(init)}-{Path(init).stem}"
        return f"{start}_l2={_fmt(l2)}_blur={blur}_lr={_fmt(lr)}"

    def conditions(self) -> list[Condition]:
        cells = []
        for init, l2, blur, lr in self._settings():
            for its in self.iterations:
                cells.append(Condition(f"{self._setting_key(init, l2, blur, lr)}_it={its}",
                                       {"init": init, "l2_reg": l2, "blur_every": blur, "lr": lr, "iterations": its}))
        return cells

    def config(self) -> dict[str, Any]:
        return {**self.identity, "target": self.model.classes[self.target], "target_index": self.target,
                "lrs": self.lrs, "iterations": self.iterations, "l2_regs": self.l2_regs,
                "blur_every": self.blur_every, "inits": self.inits, "snapshots": self.snapshots,
                "blur_sigma": self.blur_sigma, "jitter": self.jitter, "seed": self.seed}

    def bind(self, out: Path) -> None:
        """The run folder the cells' images go to (set by :func:`study_classviz` before the runner starts)."""
        self.out = Path(out)

    def _image_path(self, setting: str, its: int) -> Path:
        if self.out is None:
            raise ConfigError("the class-visualisation study writes images: bind it to its run folder first "
                              "(study.bind(out)), or call study_classviz(...)")
        return self.out / "cells" / f"{setting}_it={its}.png"

    def evaluate(self, condition: Condition) -> dict[str, Any]:
        from ..explain.class_viz import ClassVisualizer
        from ..explain.figures import save_image

        p = condition.params
        setting = self._setting_key(p["init"], p["l2_reg"], p["blur_every"], p["lr"])
        if setting not in self._cache:  # one trajectory per setting, up to its largest iteration count
            keep = tuple(sorted(set(self.iterations) | set(self.snapshots)))
            viz = ClassVisualizer(self.model, l2_reg=p["l2_reg"], lr=p["lr"], iterations=max(self.iterations),
                                  max_jitter=self.jitter, blur_every=p["blur_every"], blur_sigma=self.blur_sigma,
                                  seed=self.seed, checkpoints=keep)
            result = viz.visualize(self.target, init=self._init_pixels.get(p["init"]))
            (self.out / "cells").mkdir(parents=True, exist_ok=True)
            for its, (image, _, _) in result.checkpoints.items():
                save_image(image, self._image_path(setting, its))
            self._cache = {setting: {**result.checkpoints, 0: (None, result.scores[0], float("nan"))}}
        checkpoints = self._cache[setting]
        _, score, probability = checkpoints[p["iterations"]]
        return {"setting": setting, "final_score": score, "final_probability": probability,
                "first_score": checkpoints[0][1],
                "image": str(self._image_path(setting, p["iterations"]).relative_to(self.out))}

    # ---------------------------------------------------------------- outputs
    def figures(self, rows: list[dict[str, Any]], out: Path) -> list[Path]:
        name = self.model.classes[self.target]
        figures = [grid_figure(rows, self.iterations, out, name)]
        if self.snapshots:
            settings = [self._setting_key(*s) for s in self._settings()]
            figures.append(snapshots_figure(settings, self.snapshots, out, name))
        return figures

    def summary(self, rows: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        best = max(rows, key=lambda r: r["final_score"])
        return {"target": self.model.classes[self.target], "best_cell": best["key"],
                "best_score": best["final_score"], "best_probability": best["final_probability"]}


def _label(setting: str) -> str:
    """``noise_l2=0.001_blur=10_lr=5`` -> three short lines for a row label."""
    start, rest = setting.split("_l2=", 1)
    l2, rest = rest.split("_blur=", 1)
    blur, lr = rest.split("_lr=", 1)
    return f"{start}\nl2 {l2}, blur {'never' if blur == '0' else 'every ' + blur}\nlr {lr}"


def _read(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _image_grid(settings: list[str], columns: list[int], image, title, out: Path, suptitle: str,
                cell: tuple[float, float]) -> Path:
    """A row per setting, a column per iteration count: ``image(setting, its)`` titled ``title(setting, its)``."""
    from ..report import save_figure
    from ..report.plots import plt

    height = cell[1] * len(settings) + 0.6
    fig, axes = plt.subplots(len(settings), len(columns), squeeze=False,
                             figsize=(cell[0] * len(columns) + 1.4, height))
    fig.subplots_adjust(top=1 - 0.6 / height, bottom=0.1 / height, hspace=0.3)
    for i, setting in enumerate(settings):
        for j, its in enumerate(columns):
            ax = axes[i, j]
            ax.imshow(_read(image(setting, its)))
            ax.set_title(title(setting, its), fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(_label(setting), fontsize=7)
    fig.suptitle(suptitle, fontsize=9, y=1 - 0.15 / height)
    return save_figure(fig, out)


def grid_figure(rows: list[dict[str, Any]], iterations: list[int], out: Path, target: str) -> Path:
    """A row per setting (start, L2 weight, blur interval, learning rate), a column per iteration count."""
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    cells = {(r["setting"], r["iterations"]): r for r in rows}

    def title(setting, its):
        row = cells[(setting, its)]
        return f"{its} it: score {row['final_score']:.3g}, p {row['final_probability']:.2f}"

    return _image_grid(settings, iterations, lambda s, its: out / cells[(s, its)]["image"], title, out / "grid.png",
                       f"class visualisation of '{target}'", (2.3, 2.45))


def snapshots_figure(settings: list[str], snapshots: list[int], out: Path, target: str) -> Path:
    """A row per setting, its image after each of the ``--snapshots`` iterations."""
    return _image_grid(settings, snapshots, lambda s, its: out / "cells" / f"{s}_it={its}.png",
                       lambda s, its: f"iteration {its}", out / "snapshots.png", f"'{target}' along the way",
                       (2.1, 2.3))


def study_classviz(target: str | int, *, lrs: Sequence[float] = (1.0, 5.0, 9.0), iterations: Sequence[int] = (100, 200),
                   l2_regs: Sequence[float] = (1e-3,), blur_every: Sequence[int] = (10,),
                   inits: Sequence[str | Path] = (NOISE,), snapshots: Sequence[int] = (), blur_sigma: float = 0.5,
                   jitter: int | None = None, options: Any = None, out: Path | str | None = None,
                   restart: bool = False, progress: bool = True, **option_kw: Any) -> StudyResult:
    """``transferlab study classviz``: the class-visualisation grid into ``out`` (resumable; see the module doc).

    ``options`` is an :class:`~transferlab.explain.ExplainOptions` (or its dict, or its fields as keywords): the
    backbone and weights, or a saved model, the preprocessing, the seed and the device.
    """
    from .._utils import resolve_device
    from ..explain.run import ExplainOptions, explain_model
    from .runner import _run_in, _study_run

    opts = ExplainOptions.of(options, **option_kw)
    inits = [str(i) for i in inits]
    call = {"target": target, "lrs": list(lrs), "iterations": list(iterations), "l2_regs": list(l2_regs),
            "blur_every": list(blur_every), "inits": inits, "snapshots": list(snapshots), "blur_sigma": blur_sigma,
            "jitter": jitter, "options": opts, "restart": restart, "progress": progress}
    protected = (opts.model,) if opts.model else ()  # as `explain`: a single image's folder is no dataset
    with _study_run(ClassVizStudy.name, VERB, call, out, protected, restart) as run:
        dev = resolve_device(opts.device)
        net = explain_model(opts, dev)
        identity = {"model": net.name, "saved_model": opts.model, "preprocess": opts.preprocess}
        run.record(resolved_device=str(dev))
        study = ClassVizStudy(net, target, lrs=lrs, iterations=iterations, l2_regs=l2_regs, blur_every=blur_every,
                              inits=inits, snapshots=snapshots, blur_sigma=blur_sigma, jitter=jitter, seed=opts.seed,
                              identity=identity)
        study.bind(run.out)
        return _run_in(study, run, progress=progress, restart=restart)
