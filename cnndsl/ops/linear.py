"""Fully connected layer, and the per-channel learnable scale."""

from __future__ import annotations

from math import prod
from typing import Literal

from ..diagnostics import Code
from ..layout import fmt_shape
from .base import (
    DESCRIBE_BOOL,
    DESCRIBE_POSITIVE,
    Attrs,
    Macs,
    Op,
    PositiveInt,
    Shape,
    ShapeError,
    Tensor,
    TrainableParams,
    learned,
)
from .registry import register


class LinearParams(TrainableParams):
    features: PositiveInt
    bias: bool = True
    over: Literal["flat", "channels"] = "flat"  # channels: each position's channels (ConvNeXt's MLP)


@register()
class Linear(Op):
    kind = "linear"
    Params = LinearParams
    positional = ("features",)
    family = "linear"
    summary = ("Fully connected layer on a flat (1-D) per-sample input, or with `over=channels` on each "
               "position's channels (nn.Linear on a channels-last tensor, as ConvNeXt's MLP: a 1x1 convolution's "
               "numbers, nn.Linear's weights).")
    descriptions = {"features": DESCRIBE_POSITIVE, "bias": DESCRIBE_BOOL, "frozen": DESCRIBE_BOOL,
                    "over": "`flat` (a 1-D input) or `channels` (each position's channels)"}

    overwritable_output = True

    def output_shape(self, p: LinearParams, inputs: tuple[Shape, ...]) -> Shape:
        x = inputs[0]
        if p.over == "channels":
            return (p.features, *x[1:])
        if len(x) != 1:
            raise ShapeError(Code.E300, f"`linear` expects a flat input (features); got {fmt_shape(x)}",
                             hint="insert `flatten` (or `global_avgpool -> flatten`) before `linear`, or apply it "
                                  "to each position's channels with `linear(n, over=channels)`")
        return (p.features,)

    def tensors(self, a: Attrs[LinearParams]) -> dict[str, Tensor]:
        return learned(weight=(a.p.features, a.x[0]), bias=(a.p.features,) if a.p.bias else None)

    def macs(self, a: Attrs[LinearParams], params: int) -> Macs:
        # torchinfo counts an nn.Linear's parameters once per position it is applied at; Darknet counts
        # convolutions only, and on each position's channels this is one (a 1x1 convolution's MACs)
        positions = prod(a.out[1:])
        macs = a.x[0] * a.p.features * positions
        return Macs(macs, params * positions, macs if a.p.over == "channels" else 0)


class ScaleParams(TrainableParams):
    init: float = 1.0


@register()
class Scale(Op):
    kind = "scale"
    Params = ScaleParams
    family = "linear"
    summary = ("A learnable multiplier per channel, initialised to `init` (ConvNeXt's and CaiT's layer scale, "
               "e.g. `scale(init=1e-6)`); C parameters.")
    descriptions = {"init": "a number: the multipliers' initial value", "frozen": DESCRIBE_BOOL}
    overwritable_output = True

    def output_shape(self, p: ScaleParams, inputs: tuple[Shape, ...]) -> Shape:
        return inputs[0]

    def tensors(self, a: Attrs[ScaleParams]) -> dict[str, Tensor]:
        return learned(weight=(a.x[0], *(1,) * (len(a.x) - 1)))  # one multiplier per channel, broadcast
