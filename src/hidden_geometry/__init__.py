"""hidden-geometry: the geometry of hidden representations of transformer models, layer by layer."""

__version__ = "0.1.0"
