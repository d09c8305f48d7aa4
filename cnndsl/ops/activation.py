"""Element-wise activations and dropout: shape-preserving, no parameters, identity receptive field."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field

from ..layout import fmt_shape
from .base import DESCRIBE_PROBABILITY, NoParams, Op, OpParams, Shape, ShapeError
from .registry import register


class LeakyReluParams(OpParams):
    slope: float = 0.01


class SoftmaxParams(OpParams):
    dim: int = 0  # per-sample axis (the batch is not counted): 0 is the channel/feature axis


class GeluParams(OpParams):
    approximate: bool = False


class DropoutParams(OpParams):
    p: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5


class _Elementwise(Op):
    Params: ClassVar[type[OpParams]] = NoParams
    family = "activation"

    def output_shape(self, p: Any, inputs: tuple[Shape, ...]) -> Shape:
        return inputs[0]


def _elementwise(kind: str, summary: str) -> type[Op]:
    cls = type(kind.title().replace("_", ""), (_Elementwise,), {"kind": kind, "summary": summary})
    return register()(cls)


Relu = _elementwise("relu", "max(x, 0)")
Tanh = _elementwise("tanh", "hyperbolic tangent")
Sigmoid = _elementwise("sigmoid", "logistic sigmoid 1 / (1 + exp(-x))")
Silu = _elementwise("silu", "x * sigmoid(x) (swish)")


@register()
class LeakyRelu(_Elementwise):
    kind = "leaky_relu"
    Params = LeakyReluParams
    positional = ("slope",)
    summary = "max(x, 0) + slope * min(x, 0)"
    descriptions = {"slope": "a number"}


@register()
class Gelu(_Elementwise):
    kind = "gelu"
    Params = GeluParams
    summary = "Gaussian error linear unit (`approximate=true`: tanh approximation)"


@register()
class Softmax(_Elementwise):
    kind = "softmax"
    Params = SoftmaxParams
    positional = ("dim",)
    summary = "softmax along a per-sample axis (default 0: channels/features)"
    descriptions = {"dim": "an integer axis of the per-sample shape (negative counts from the end)"}

    def output_shape(self, p: SoftmaxParams, inputs: tuple[Shape, ...]) -> Shape:
        x = inputs[0]
        if not -len(x) <= p.dim < len(x):
            raise ShapeError("E205", f"`softmax` dim {p.dim} is out of range for a per-sample shape {fmt_shape(x)}",
                             hint=f"dims count per sample, from 0 to {len(x) - 1} (the batch is implicit)")
        return x


@register()
class Dropout(_Elementwise):
    kind = "dropout"
    Params = DropoutParams
    positional = ("p",)
    family = "regularization"
    summary = "zeroes elements with probability p during training; identity at inference"
    descriptions = {"p": DESCRIBE_PROBABILITY}
