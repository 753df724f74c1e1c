"""digitflow: a reproducible DVC + MLflow pipeline that classifies handwritten digits."""

__version__ = "0.1.0"
