"""The seeds' studies: each a :class:`Study` (conditions -> rows) run by the one shared :func:`run_study`.

``LayersStudy`` (cut point; VGG conv x classifier heatmap), ``BackbonesStudy``, ``CStudy``, ``PCAStudy``,
``HeadsStudy``; see ``docs/studies.md``.
"""

from .backbones import BackbonesStudy
from .c_sweep import CStudy
from .grid import GridAxes, grid_axes
from .heads import HEADS, HeadsStudy
from .layers import LayersStudy, default_layers
from .pca import PCAStudy
from .runner import Condition, Study, StudyResult, run_study

__all__ = [
    "HEADS", "BackbonesStudy", "CStudy", "Condition", "GridAxes", "HeadsStudy", "LayersStudy", "PCAStudy", "Study",
    "StudyResult", "default_layers", "grid_axes", "run_study",
]
