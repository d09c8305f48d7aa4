"""Element-wise activations and dropout: shape-preserving, identity receptive field; no parameters except
PReLU's slopes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import Field

from ..diagnostics import Code
from ..layout import fmt_shape
from .base import (
    DESCRIBE_BOOL,
    DESCRIBE_PROBABILITY,
    Attrs,
    Kept,
    NoParams,
    Op,
    OpParams,
    Shape,
    ShapeError,
    Tensor,
    TrainableParams,
    learned,
)
from .compose import Primitives
from .registry import register

T = TypeVar("T")


class LeakyReluParams(OpParams):
    slope: float = 0.01


class SoftmaxParams(OpParams):
    dim: int = 0  # per-sample axis (the batch is not counted): 0 is the channel/feature axis


class GeluParams(OpParams):
    approximate: bool = False


class SoftplusParams(OpParams):
    beta: Annotated[float, Field(gt=0.0)] = 1.0
    threshold: float = 20.0  # above beta * x > threshold, the identity (as PyTorch: exp would overflow)


class DropoutParams(OpParams):
    p: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5


class EluParams(OpParams):
    alpha: float = 1.0


class PreluParams(TrainableParams):
    per_channel: bool = False  # one learnable slope per channel (PyTorch's num_parameters=C), or one shared
    init: float = 0.25


class _Elementwise(Op):
    Params: ClassVar[type[OpParams]] = NoParams
    family = "activation"

    def output_shape(self, p: Any, inputs: tuple[Shape, ...]) -> Shape:
        return inputs[0]


def _elementwise(kind: str, summary: str, in_place: bool = False, kept: Kept = Kept.INPUT,
                 formula: Callable[[Primitives[Any], Any], Any] | None = None) -> type[Op]:
    """An activation without arguments; `in_place`: PyTorch computes it in place safely (its backward reads
    its output, or nothing); `kept`: what its backward keeps (`Op.kept_for_backward`); `formula`: the
    activation in primitives (`Op.compose`), for backends without a hand-written lowering."""
    attributes: dict[str, Any] = {"kind": kind, "summary": summary, "computes_in_place": in_place,
                                  "kept_for_backward": kept, "__module__": __name__}
    if formula is not None:
        attributes["compose"] = lambda self, f, x, a: formula(f, x)
    return register()(type(kind.title().replace("_", ""), (_Elementwise,), attributes))


def _relu6_gate(f: Primitives[T], x: T) -> T:
    """relu6(x + 3) / 6: the piecewise-linear gate of hardsigmoid and hardswish."""
    return f.divide(f.clip(f.add(x, 3.0), 0.0, 6.0), 6.0)


Relu = _elementwise("relu", "max(x, 0)", in_place=True, kept=Kept.OUTPUT)
Relu6 = _elementwise("relu6", "min(max(x, 0), 6) (MobileNet v1/v2)", in_place=True)
Tanh = _elementwise("tanh", "hyperbolic tangent", kept=Kept.OUTPUT)
Sigmoid = _elementwise("sigmoid", "logistic sigmoid 1 / (1 + exp(-x))", kept=Kept.OUTPUT)
Hardsigmoid = _elementwise("hardsigmoid", "relu6(x + 3) / 6, a piecewise-linear sigmoid (MobileNet v3's gates)",
                           formula=_relu6_gate)
Silu = _elementwise("silu", "x * sigmoid(x) (swish)", in_place=True)
Hardswish = _elementwise("hardswish", "x * relu6(x + 3) / 6, a piecewise-linear swish (MobileNet v3)", in_place=True,
                         formula=lambda f, x: f.multiply(x, _relu6_gate(f, x)))
Mish = _elementwise("mish", "x * tanh(softplus(x)) (Misra 2019; YOLOv4)",
                    formula=lambda f, x: f.multiply(x, f.tanh(f.softplus(x, 1.0, 20.0))))


@register()
class Elu(_Elementwise):
    kind = "elu"
    kept_for_backward = Kept.OUTPUT
    Params = EluParams
    positional = ("alpha",)
    summary = "x for x > 0, alpha * (exp(x) - 1) otherwise"
    descriptions = {"alpha": "a number"}
    computes_in_place = True

    def compose(self, f: Primitives[T], x: T, a: Attrs[EluParams]) -> T:
        return f.add(f.maximum(x, 0.0), f.multiply(a.p.alpha, f.subtract(f.exp(f.minimum(x, 0.0)), 1.0)))


@register()
class Prelu(_Elementwise):
    kind = "prelu"
    Params = PreluParams
    summary = ("max(x, 0) + a * min(x, 0) with a learned slope a: one shared, or one per channel with "
               "`per_channel=true` (He et al., 2015)")
    descriptions = {"per_channel": DESCRIBE_BOOL, "init": "a number: the slopes' initial value",
                    "frozen": DESCRIBE_BOOL}

    def tensors(self, a: Attrs[PreluParams]) -> dict[str, Tensor]:
        return learned(weight=(a.x[0] if a.p.per_channel else 1,))


@register()
class LeakyRelu(_Elementwise):
    kind = "leaky_relu"
    Params = LeakyReluParams
    positional = ("slope",)
    summary = "max(x, 0) + slope * min(x, 0)"
    descriptions = {"slope": "a number"}
    computes_in_place = True
    keeps_output_in_place = True


@register()
class Softplus(_Elementwise):
    kind = "softplus"
    Params = SoftplusParams
    positional = ("beta", "threshold")
    summary = ("log(1 + exp(beta * x)) / beta, a smooth relu; x itself where beta * x > threshold "
               "(PyTorch's nn.Softplus)")
    descriptions = {"beta": "a positive number", "threshold": "a number"}

    def compose(self, f: Primitives[T], x: T, a: Attrs[SoftplusParams]) -> T:
        return f.softplus(x, a.p.beta, a.p.threshold)


@register()
class Gelu(_Elementwise):
    kind = "gelu"
    Params = GeluParams
    summary = "Gaussian error linear unit (`approximate=true`: tanh approximation)"


@register()
class Softmax(_Elementwise):
    kind = "softmax"
    kept_for_backward = Kept.OUTPUT
    Params = SoftmaxParams
    positional = ("dim",)
    summary = "softmax along a per-sample axis (default 0: channels/features)"
    descriptions = {"dim": "an integer axis of the per-sample shape (negative counts from the end)"}

    def output_shape(self, p: SoftmaxParams, inputs: tuple[Shape, ...]) -> Shape:
        x = inputs[0]
        if not -len(x) <= p.dim < len(x):
            raise ShapeError(Code.E205, f"`softmax` dim {p.dim} is out of range for a per-sample shape {fmt_shape(x)}",
                             hint=f"dims count per sample, from 0 to {len(x) - 1} (the batch is implicit)")
        return x


@register()
class Dropout(_Elementwise):
    kind = "dropout"
    kept_for_backward = Kept.NOTHING
    kept_extra = 1.0
    Params = DropoutParams
    positional = ("p",)
    family = "regularization"
    summary = "zeroes elements with probability p during training; identity at inference"
    descriptions = {"p": DESCRIBE_PROBABILITY}
    computes_in_place = True


@register()
class DropPath(_Elementwise):
    kind = "drop_path"
    kept_for_backward = Kept.NOTHING
    Params = DropoutParams
    positional = ("p",)
    family = "regularization"
    summary = ("stochastic depth (Huang et al., 2016): drops a whole sample's residual branch with probability p "
               "during training (torchvision's StochasticDepth, mode=row); identity at inference")
    descriptions = {"p": DESCRIBE_PROBABILITY}
