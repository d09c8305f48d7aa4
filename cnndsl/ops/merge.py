"""Ops that join several tensors: element-wise add (residuals) and concat (branches, skips)."""

from __future__ import annotations

from ..layout import fmt_shape
from .base import NoParams, Op, OpParams, Shape, ShapeError
from .registry import register


class ConcatParams(OpParams):
    dim: int = 0  # per-sample axis: 0 concatenates channels


def _mismatch(op: str, a: Shape, b: Shape, axis: int) -> ShapeError:
    if axis == 0:
        return ShapeError("E301", f"`{op}` needs equal channels; got {fmt_shape(a)} and {fmt_shape(b)}",
                          hint="project the shortcut with a 1x1 conv to the same channel count")
    return ShapeError("E302", f"`{op}` needs equal sizes along axis {axis}; got {fmt_shape(a)} and {fmt_shape(b)}",
                      hint="crop (`[x, like] -> crop`), pad or resample one side to the other's size")


@register()
class Add(Op):
    kind = "add"
    Params = NoParams
    min_inputs = 2
    max_inputs = None
    family = "merge"
    summary = "Element-wise sum of two or more tensors of the same shape (residual connections)."
    overwritable_output = True

    def output_shape(self, p: NoParams, inputs: tuple[Shape, ...]) -> Shape:
        first = inputs[0]
        for other in inputs[1:]:
            if len(other) != len(first):
                raise ShapeError("E300", f"`add` inputs differ in rank: {fmt_shape(first)} and {fmt_shape(other)}")
            for axis, (a, b) in enumerate(zip(first, other, strict=True)):
                if a != b:
                    raise _mismatch("add", first, other, axis)
        return first


@register()
class Concat(Op):
    kind = "concat"
    Params = ConcatParams
    min_inputs = 2
    max_inputs = None
    family = "merge"
    summary = "Concatenation along a per-sample axis (default 0: channels); other axes must match."
    descriptions = {"dim": "an integer axis of the per-sample shape (0: channels)"}
    overwritable_output = True

    def output_shape(self, p: ConcatParams, inputs: tuple[Shape, ...]) -> Shape:
        first = inputs[0]
        dim = p.dim + len(first) if p.dim < 0 else p.dim
        if not 0 <= dim < len(first):
            raise ShapeError("E205", f"`concat` dim {p.dim} is out of range for {fmt_shape(first)}")
        total = 0
        for other in inputs:
            if len(other) != len(first):
                raise ShapeError("E300", f"`concat` inputs differ in rank: {fmt_shape(first)} and {fmt_shape(other)}")
            for axis, (a, b) in enumerate(zip(first, other, strict=True)):
                if axis != dim and a != b:
                    raise ShapeError("E302", f"`concat` along axis {dim} needs equal sizes on the other axes; got "
                                     f"{fmt_shape(first)} and {fmt_shape(other)} (axis {axis})",
                                     hint="crop the larger one first: `[skip, up] -> crop`")
            total += other[dim]
        return first[:dim] + (total,) + first[dim + 1:]
