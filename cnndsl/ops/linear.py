"""Fully connected layer."""

from __future__ import annotations

from .base import DESCRIBE_BOOL, DESCRIBE_POSITIVE, Op, OpParams, ParamCount, PositiveInt, Shape, ShapeError, fmt_shape
from .registry import register


class LinearParams(OpParams):
    features: PositiveInt
    bias: bool = True
    frozen: bool = False


@register()
class Linear(Op):
    kind = "linear"
    Params = LinearParams
    positional = ("features",)
    family = "linear"
    summary = "Fully connected layer on a flat (1-D) per-sample input."
    descriptions = {"features": DESCRIBE_POSITIVE, "bias": DESCRIBE_BOOL, "frozen": DESCRIBE_BOOL}

    def infer_shape(self, p: LinearParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        if len(x) != 1:
            raise ShapeError("E300", f"`linear` expects a flat input (features); got {fmt_shape(x)}",
                             hint="insert `flatten` (or `global_avgpool -> flatten`) before `linear`")
        return (p.features,)

    def param_count(self, p: LinearParams, inputs: list[Shape], out: Shape) -> ParamCount:
        return ParamCount(inputs[0][0] * p.features + (p.features if p.bias else 0))

    def weight_macs(self, p: LinearParams, inputs: list[Shape], out: Shape) -> int:
        return inputs[0][0] * p.features
