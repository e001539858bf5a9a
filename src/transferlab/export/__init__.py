"""Deployable models: a saved transferlab model as one ONNX graph (:func:`export_onnx`)."""

from .onnx import EXPORTABLE_KINDS, ExportedScores, export_onnx, exportable_module

__all__ = ["EXPORTABLE_KINDS", "ExportedScores", "export_onnx", "exportable_module"]
