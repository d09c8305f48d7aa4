"""Ops that join several tensors: element-wise add (residuals) and mul (gates), broadcasting as numpy does,
and concat (branches, skips)."""

from __future__ import annotations

from ..diagnostics import Code
from ..layout import fmt_shape
from .base import Kept, NoParams, Op, OpParams, Shape, ShapeError
from .registry import register


class ConcatParams(OpParams):
    dim: int = 0  # per-sample axis: 0 concatenates channels


def _mismatch(op: str, a: Shape, b: Shape, axis: int) -> ShapeError:
    if axis == 0:
        return ShapeError(Code.E301, f"`{op}` needs equal channels; got {fmt_shape(a)} and {fmt_shape(b)}",
                          hint="project the shortcut with a 1x1 conv to the same channel count (or give one side "
                               "1 channel, to broadcast)")
    return ShapeError(Code.E302, f"`{op}` needs equal sizes along axis {axis}; got {fmt_shape(a)} and {fmt_shape(b)}",
                      hint="crop (`[x, like] -> crop`), pad or resample one side to the other's size (or pool it to "
                           "size 1, to broadcast)")


def broadcast(op: str, shapes: tuple[Shape, ...]) -> Shape:
    """numpy's broadcasting of per-sample shapes: aligned at the last axis, each pair of sizes equal or one
    of them 1 (a squeeze-excitation gate `C x 1 x 1` scales every position of `C x H x W`)."""
    result = shapes[0]
    for other in shapes[1:]:
        rank = max(len(result), len(other))
        left, right = (1,) * (rank - len(result)) + result, (1,) * (rank - len(other)) + other
        for axis, (a, b) in enumerate(zip(left, right, strict=True)):
            if a != b and 1 not in (a, b):
                raise _mismatch(op, result, other, axis)
        result = tuple(max(a, b) for a, b in zip(left, right, strict=True))
    return result


class _Elementwise(Op):
    """An element-wise merge of two or more tensors, with broadcasting."""

    Params = NoParams
    min_inputs = 2
    max_inputs = None
    family = "merge"
    overwritable_output = True
    broadcasts = True

    def output_shape(self, p: NoParams, inputs: tuple[Shape, ...]) -> Shape:
        return broadcast(self.kind, inputs)


@register()
class Add(_Elementwise):
    kind = "add"
    kept_for_backward = Kept.NOTHING
    computes_in_place = True  # `out += identity`; mul is not: its gradient needs both factors
    summary = ("Element-wise sum of two or more tensors (residual connections); shapes broadcast as numpy's "
               "(sizes equal or 1).")


@register()
class Mul(_Elementwise):
    kind = "mul"
    kept_for_backward = Kept.INPUTS
    summary = ("Element-wise product of two or more tensors; shapes broadcast as numpy's (a squeeze-excitation "
               "gate: `[x, gate] -> mul` with x `C x H x W` and gate `C x 1 x 1`).")


@register()
class Concat(Op):
    kind = "concat"
    kept_for_backward = Kept.NOTHING
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
            raise ShapeError(Code.E205, f"`concat` dim {p.dim} is out of range for {fmt_shape(first)}")
        total = 0
        for other in inputs:
            if len(other) != len(first):
                raise ShapeError(Code.E300,
                                 f"`concat` inputs differ in rank: {fmt_shape(first)} and {fmt_shape(other)}")
            for axis, (a, b) in enumerate(zip(first, other, strict=True)):
                if axis != dim and a != b:
                    raise ShapeError(Code.E302, f"`concat` along axis {dim} needs equal sizes on the other axes; got "
                                     f"{fmt_shape(first)} and {fmt_shape(other)} (axis {axis})",
                                     hint="crop the larger one first: `[skip, up] -> crop`")
            total += other[dim]
        return first[:dim] + (total,) + first[dim + 1:]
