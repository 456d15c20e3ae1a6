"""Pathways: learning-pathway recommendations for integrated academic and vocational education."""

__version__ = "0.1.0"
