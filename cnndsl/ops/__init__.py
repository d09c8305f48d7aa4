"""Ops: one registry entry per op kind (schema, resolved attributes, shape rule, costs, receptive field)."""

from . import activation, conv, linear, merge, norm, pool, regions, resize, structure  # noqa: F401  (registration)
from .base import Attrs, Convention, Geometry, Macs, Op, OpParams, ParamCount, Shape, ShapeError, Window, WindowAttrs
from .registry import REGISTRY, lookup
from .structure import INPUT

__all__ = ["INPUT", "REGISTRY", "Attrs", "Convention", "Geometry", "Macs", "Op", "OpParams", "ParamCount", "Shape",
           "ShapeError", "Window", "WindowAttrs", "lookup"]
