"""Shared helpers of every layer. ``__version__``: the project's version (ONNX manifests record it)."""
__version__ = "0.1.0"
