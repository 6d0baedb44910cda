"""The classifier's exception tree: every expected failure is a ClassifierError."""

from __future__ import annotations


class ClassifierError(Exception):
    """Root of every error the classifier raises on purpose."""


class ModelLoadError(ClassifierError):
    """A model directory is missing, corrupt, or does not match its manifest."""


class GraphLoadError(ModelLoadError):
    """onnxruntime could not build a session for a graph file (e.g. an operator this runtime lacks)."""


class DataError(ClassifierError):
    """Training, scoring or evaluation input is malformed (bad JSON, missing field, one class)."""


class ExportError(ClassifierError):
    """The embedder could not be exported (usually: the [export] extra is not installed)."""
