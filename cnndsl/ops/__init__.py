"""Ops: one registry entry per op kind (schema, shape rule, costs, receptive field)."""

from . import activation, conv, linear, merge, norm, pool, resize, structure  # noqa: F401  (registration)
from .base import Op, OpParams, ParamCount, Shape, ShapeError, Window
from .registry import REGISTRY, lookup

__all__ = ["REGISTRY", "Op", "OpParams", "ParamCount", "Shape", "ShapeError", "Window", "lookup"]
