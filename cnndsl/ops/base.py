"""What every op is: a parameter schema and the rules the analysis passes and backends call.

One op = one ``Op`` subclass, registered by name with ``@register``. It owns its schema (a strict
pydantic model), its shape rule, parameter count, MACs in each counting convention and its
receptive-field rule. The backends (PyTorch, TVM) will add their lowering to the same entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import prod
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Shape = tuple[int, ...]
Number = int | Fraction

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveInts = PositiveInt | tuple[PositiveInt, ...]
PadPair = tuple[NonNegativeInt, NonNegativeInt]
Padding = NonNegativeInt | tuple[NonNegativeInt | PadPair, ...] | Literal["same", "valid"]

# Human descriptions of the argument types, used in error messages ("`stride` must be ...").
DESCRIBE_POSITIVE = "a positive integer"
DESCRIBE_POSITIVE_AXES = "a positive integer or a tuple of them, one per spatial axis"
DESCRIBE_PADDING = ("a non-negative integer, a tuple of them per axis, a tuple of (before, after) pairs, "
                    "`same` or `valid`")
DESCRIBE_BOOL = "`true` or `false`"
DESCRIBE_PROBABILITY = "a number in [0, 1)"


class OpParams(BaseModel):
    """Base of every op's parameter model: strict, frozen, no unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NoParams(OpParams):
    """The parameters of ops that take none."""


class ShapeError(Exception):
    """A shape rule rejected its inputs. The shape pass turns it into a located diagnostic."""

    def __init__(self, code: str, message: str, hint: str | None = None):
        self.code, self.message, self.hint = code, message, hint
        super().__init__(message)


@dataclass(frozen=True)
class Window:
    """How one output axis reads its input axis, for the receptive-field pass.

    Output position j reads `kernel` input positions starting at -padding + j*stride. Up-sampling ops
    have a fractional stride (1/factor) and a fractional padding (their centres follow the half-pixel
    correspondence), kept exact as Fractions.
    """

    kernel: int
    stride: Number
    padding: Number


IDENTITY_WINDOW = Window(1, 1, 0)


@dataclass(frozen=True)
class ParamCount:
    params: int  # learnable tensors' elements (what torchvision's num_params counts)
    buffers: int = 0  # running statistics: part of the state_dict, not of the parameter count


NO_PARAMS = ParamCount(0)


class Op:
    """An op kind. Subclasses set the class attributes and override the rules that apply."""

    kind: ClassVar[str]  # registry name, as written in specs
    Params: ClassVar[type[OpParams]]
    positional: ClassVar[tuple[str, ...]] = ()  # order of positional arguments
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1  # None: any number >= min_inputs
    family: ClassVar[str] = "other"
    ranked_label: ClassVar[bool] = False  # reports show the input's rank: conv on C x H x W is "conv2d"
    summary: ClassVar[str] = ""
    descriptions: ClassVar[dict[str, str]] = {}  # argument -> human type description for errors
    data_inputs: ClassVar[int | None] = None  # inputs whose values flow through (None: all); crop's 2nd is a size

    def __init__(self, rank: int | None = None, name: str | None = None):
        # rank: the spatial rank an alias fixes (conv2d -> 2); None accepts any.
        self.rank = rank
        self.name = name or self.kind

    # ---- rules ------------------------------------------------------------------------------------
    def infer_shape(self, p: Any, inputs: list[Shape]) -> Shape:
        raise NotImplementedError

    def param_count(self, p: Any, inputs: list[Shape], out: Shape) -> ParamCount:
        return NO_PARAMS

    def weight_macs(self, p: Any, inputs: list[Shape], out: Shape) -> int:
        """Multiply-accumulates of the weights (torchvision's `_ops`, papers): 0 for most ops."""
        return 0

    def torchinfo_macs(self, p: Any, inputs: list[Shape], out: Shape, params: int) -> int:
        """torchinfo's Mult-Adds per sample: layers with parameters count their parameters once."""
        return params

    def darknet_macs(self, p: Any, inputs: list[Shape], out: Shape) -> int:
        """Darknet counts convolutional layers only (BFLOPs = 2 x this / 1e9)."""
        return 0

    def windows(self, p: Any, inputs: list[Shape], out: Shape) -> list[Window] | None:
        """Receptive-field windows, one per output spatial axis; None when the output has none."""
        return [IDENTITY_WINDOW] * (len(out) - 1) if len(out) > 1 else None

    def label(self, p: Any, inputs: list[Shape]) -> str:
        """The name shown in reports (conv becomes conv2d on a 2-D input)."""
        return f"{self.kind}{max(len(inputs[0]) - 1, 1)}d" if self.ranked_label else self.name

    # ---- helpers for subclasses -------------------------------------------------------------------
    def spatial_rank(self, x: Shape, minimum: int = 1) -> int:
        """Check a (C, *spatial) input against this op's rank and return the spatial rank."""
        rank = len(x) - 1
        if self.rank is not None and rank != self.rank:
            raise ShapeError("E300", f"`{self.name}` expects a {self.rank}-D input (C x {_axes(self.rank)}); "
                             f"got {fmt_shape(x)}",
                             hint=f"use `{self.kind}` to follow the input's rank" if self.kind != self.name else None)
        if rank < minimum:
            raise ShapeError("E300", f"`{self.name}` needs channels and at least {minimum} spatial axis; "
                             f"got {fmt_shape(x)}",
                             hint="convolution and pooling take C x L, C x H x W or C x D x H x W inputs")
        if rank > 3:
            raise ShapeError("E300", f"`{self.name}` supports 1, 2 or 3 spatial axes; got {fmt_shape(x)}")
        return rank


def _axes(rank: int) -> str:
    return {1: "L", 2: "H x W", 3: "D x H x W"}.get(rank, "...")


def fmt_shape(shape: Shape) -> str:
    return " x ".join(str(d) for d in shape) if shape else "scalar"


def per_axis(value: int | tuple[int, ...], rank: int, name: str, op: str) -> tuple[int, ...]:
    """Broadcast an int to every spatial axis, or check a tuple has one entry per axis."""
    if isinstance(value, int):
        return (value,) * rank
    if len(value) != rank:
        raise ShapeError("E205", f"`{name}` of `{op}` has {len(value)} entries {value} but the input has "
                         f"{rank} spatial axes", hint=f"give one value or {rank} values")
    return tuple(value)


def resolve_padding(padding: Any, n: Shape, kernel: tuple[int, ...], stride: tuple[int, ...],
                    dilation: tuple[int, ...], op: str) -> tuple[tuple[int, int], ...]:
    """(before, after) padding per spatial axis for every accepted padding form."""
    from .formulas import same_padding

    rank = len(n)
    if padding == "valid":
        return ((0, 0),) * rank
    if padding == "same":
        return tuple(same_padding(n[i], kernel[i], stride[i], dilation[i]) for i in range(rank))
    if isinstance(padding, int):
        return ((padding, padding),) * rank
    if len(padding) != rank:
        raise ShapeError("E205", f"`padding` of `{op}` has {len(padding)} entries but the input has {rank} "
                         "spatial axes", hint="give one value, one per axis, or one (before, after) pair per axis")
    return tuple((p, p) if isinstance(p, int) else (p[0], p[1]) for p in padding)


def batched_axis(dim: int) -> int:
    """A per-sample axis (0 = channels, as softmax and concat take it) as an axis of the batched tensor
    the backends compute on; negative axes count from the end and stay as they are."""
    return dim + 1 if dim >= 0 else dim


def spatial_size(shape: Shape) -> int:
    return prod(shape[1:])
