"""What every op is: a parameter schema, its arguments resolved once, and the rules that read them.

One op = one ``Op`` subclass, registered by name with ``@register``. It owns its schema (a strict
pydantic model), and `resolve`, which turns the validated arguments and the input shapes into a frozen
`Attrs` record (the output shape and whatever the op derives from its arguments: geometry with padding
resolved, groups, crop offsets). Its parameter count, MACs, receptive-field windows and label, the
lints and both backends' lowerings all read that record: nobody re-derives an op's geometry.

Per-op facts the backends need are class attributes here (`overwritable_output`, `spatial_ranks`), not
tables kept elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from math import prod
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ..diagnostics import Code
from ..layout import Shape, fmt_shape, spatial_names, spatial_rank
from .compose import Primitives
from .formulas import conv_output_size, effective_kernel, same_padding

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


    @classmethod
    def argument_names(cls) -> list[str]:
        """The arguments in the order users read them: the op's own first, shared ones (`frozen`) last."""
        shared = [name for name in TrainableParams.model_fields if name in cls.model_fields]
        return [name for name in cls.model_fields if name not in shared] + shared


class NoParams(OpParams):
    """The parameters of ops that take none."""


class TrainableParams(OpParams):
    """The parameters of an op with learnable tensors: `frozen` excludes them from training (their
    requires_grad is off; the report counts them as parameters, not as trainable ones)."""

    frozen: bool = False


class ShapeError(Exception):
    """A shape rule rejected its inputs. The shape pass turns it into a located diagnostic."""

    def __init__(self, code: Code, message: str, hint: str | None = None):
        self.code, self.message, self.hint = code, message, hint
        super().__init__(message)


@dataclass(frozen=True)
class Window:
    """How one output axis reads its input axis, for the receptive-field pass.

    Output position j reads `kernel` input positions starting at -padding + j*stride. Up-sampling ops
    have a fractional stride (1/factor) and a fractional padding (their centres follow the half-pixel
    correspondence), kept exact as Fractions. `uneven`: the windows differ in size (adaptive pooling)
    and this is the widest, an upper bound (I102 says so).
    """

    kernel: int
    stride: Number
    padding: Number
    uneven: bool = False


IDENTITY_WINDOW = Window(1, 1, 0)


def upsampling_window(reads: int, factor: Number, offset: Number) -> Window:
    """The window of an up-sampling by `factor` (stride 1/factor) whose output j reads `reads` input
    positions centred at input coordinate (j + offset) / factor."""
    return Window(reads, Fraction(1) / factor, Fraction(reads - 1, 2) - Fraction(offset) / factor)


def half_pixel_window(reads: int, factor: Number) -> Window:
    """Up-sampling with the half-pixel correspondence (output j's centre maps to (j + 1/2)/factor - 1/2):
    nearest (1 read) and linear (2 reads) interpolation, pixel shuffle."""
    return upsampling_window(reads, factor, Fraction(1 - factor, 2))


@dataclass(frozen=True)
class ParamCount:
    params: int  # learnable tensors' elements (what torchvision's num_params counts)
    buffers: int = 0  # running statistics: part of the state_dict, not of the parameter count


NO_PARAMS = ParamCount(0)


@dataclass(frozen=True)
class Tensor:
    """A tensor a layer holds (`Op.tensors`): its shape, and whether it is learned (a parameter) or kept
    (a buffer: batch norm's running statistics)."""

    shape: tuple[int, ...]
    learned: bool = True

    @property
    def size(self) -> int:
        return prod(self.shape)


def learned(**shapes: tuple[int, ...] | None) -> dict[str, Tensor]:
    """Learned tensors by name; a None shape is left out (a bias switched off)."""
    return {name: Tensor(shape) for name, shape in shapes.items() if shape is not None}


P = TypeVar("P", bound=OpParams)
T = TypeVar("T")


@dataclass(frozen=True)
class Attrs(Generic[P]):
    """An op's arguments resolved against its input shapes, once, by `Op.resolve`. Subclasses add what
    an op derives (`WindowAttrs.geometry`, `ConvAttrs.groups`)."""

    p: P  # the validated arguments, as written
    inputs: tuple[Shape, ...]  # per-sample input shapes
    out: Shape  # per-sample output shape

    @property
    def x(self) -> Shape:
        """The first (data) input's shape."""
        return self.inputs[0]

    @property
    def rank(self) -> int:
        """Spatial axes of the first input."""
        return spatial_rank(self.inputs[0])


@dataclass(frozen=True)
class Geometry:
    """A window sweep (convolution or pooling) resolved against one input: everything per spatial axis."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]  # (before, after)
    out: tuple[int, ...]
    ceil: bool = False  # pooling's ceil mode: a partial last window is kept

    @property
    def effective(self) -> tuple[int, ...]:
        return tuple(effective_kernel(k, d) for k, d in zip(self.kernel, self.dilation, strict=True))

    @property
    def padding_before(self) -> tuple[int, ...]:
        return tuple(before for before, _ in self.padding)

    @property
    def symmetric(self) -> bool:
        return all(before == after for before, after in self.padding)

    def windows(self) -> list[Window]:
        return [Window(k, s, p[0]) for k, s, p in zip(self.effective, self.stride, self.padding, strict=True)]


@dataclass(frozen=True)
class WindowAttrs(Attrs[P]):
    """The attributes of an op with a sliding window: what the window lints (W100, W102) read. An op that
    slides a window resolves to this (or a subclass), and gets the lints with it."""

    geometry: Geometry
    groups: int = 1  # channel groups the window reads (a grouped convolution's; 1 for pooling)


class Kept(StrEnum):
    """Which tensor of a layer autograd keeps for its backward pass."""

    INPUT = "input"
    OUTPUT = "output"
    INPUTS = "inputs"
    NOTHING = "nothing"


class Convention(StrEnum):
    """How peers count multiply-accumulates (see `Macs`)."""

    TORCHVISION = "torchvision"
    TORCHINFO = "torchinfo"
    DARKNET = "darknet"


@dataclass(frozen=True)
class Macs:
    """Multiply-accumulates per sample of one layer, in each peer's counting convention:

    - torchvision: weight MACs of conv, transposed conv, locally connected and linear layers (papers);
    - torchinfo: "Mult-Adds": conv layers count (weights + bias) x output positions; other layers with
      parameters count their parameters once per sample;
    - darknet: convolutional layers' weight MACs only (Darknet prints 2 x this as BFLOPs).
    """

    torchvision: int
    torchinfo: int
    darknet: int

    def __getitem__(self, convention: Convention | str) -> int:
        return int(getattr(self, Convention(convention).value))


NO_MACS = Macs(0, 0, 0)


class Op:
    """An op kind. Subclasses set the class attributes and override the rules that apply: `output_shape`
    when the output shape is all an op derives from its arguments, else `resolve` with its own `Attrs`."""

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
    spatial_ranks: ClassVar[tuple[int, ...]] = (1, 2, 3)  # what `spatial_rank` accepts
    # The output is a fresh tensor that autograd does not keep for the backward: a sole reader may
    # overwrite it in place. Not: views (flatten, crop, reshape), ops returning their input (identity,
    # dropout at inference), activations that save their output (relu, sigmoid, tanh, softmax, ...).
    overwritable_output: ClassVar[bool] = False
    # Can compute into its first input's memory (PyTorch's `inplace=True`) when that input is overwritable,
    # read by nothing else and of the output's shape; its backward must not need the input it overwrites
    # (relu, add: yes; mul, whose gradient needs both factors: no).
    computes_in_place: ClassVar[bool] = False
    # Inputs broadcast against each other (numpy's rules): an input axis of size 1 under a larger output axis
    # is read at every output position (its receptive field there has stride 0, as after global pooling).
    broadcasts: ClassVar[bool] = False
    # A GEMM-like kernel whose speed on GPU tensor cores needs channel counts that are multiples of 8 (I101).
    tensor_core_channels: ClassVar[bool] = False
    # What PyTorch's autograd keeps of this layer for the backward pass (the training-memory estimate):
    # its input (conv, linear, batch norm, most activations), its output (relu, sigmoid, tanh, elu,
    # softmax), every input (mul), or nothing (add, concat, views, up-sampling); `kept_extra`: more kept,
    # in fp32 elements per output element (max pooling's int64 indices: 2; dropout's mask: 1). Measured
    # against torch.autograd.graph.saved_tensors_hooks in tests/test_training_memory.py.
    kept_for_backward: ClassVar[Kept] = Kept.INPUT
    kept_extra: ClassVar[float] = 0.0
    # Computed in place, it keeps its output (the shared memory) instead of a copy of its input
    # (leaky_relu_: the slope keeps the sign, so the result tells the gradient).
    keeps_output_in_place: ClassVar[bool] = False
    # PyTorch returns a view of the input, sharing its memory (flatten, reshape, slicing).
    returns_view: ClassVar[bool] = False

    def __init__(self, rank: int | None = None, name: str | None = None):
        # rank: the spatial rank an alias fixes (conv2d -> 2); None accepts any.
        self.rank = rank
        self.name = name or self.kind

    # ---- resolution: arguments + input shapes -> attributes (raises ShapeError) -------------------
    def resolve(self, p: Any, inputs: tuple[Shape, ...]) -> Attrs[Any]:
        return Attrs(p, inputs, self.output_shape(p, inputs))

    def output_shape(self, p: Any, inputs: tuple[Shape, ...]) -> Shape:
        raise NotImplementedError(f"`{self.kind}` defines neither resolve nor output_shape")

    # ---- rules over the resolved attributes -------------------------------------------------------
    def tensors(self, a: Any) -> dict[str, Tensor]:
        """The tensors a layer of this op holds, by name: the names both backends use (the PyTorch module's
        state_dict keys under the layer's name; the TVM lowering reads its weights by them), the shapes the
        parameter count sums. tests/test_op_contract.py checks every op's against its PyTorch module."""
        return {}

    def param_count(self, a: Any) -> ParamCount:
        tensors = self.tensors(a).values()
        return ParamCount(sum(t.size for t in tensors if t.learned), sum(t.size for t in tensors if not t.learned))

    def macs(self, a: Any, params: int) -> Macs:
        """MACs per convention; `params` is this layer's parameter count (torchinfo counts layers with
        parameters once per sample by default)."""
        return Macs(0, params, 0)

    def windows(self, a: Any) -> list[Window] | None:
        """Receptive-field windows, one per output spatial axis; None when the output has none."""
        return [IDENTITY_WINDOW] * (len(a.out) - 1) if len(a.out) > 1 else None

    def keeps_for_backward(self, a: Any) -> Kept:
        """What autograd keeps of this layer, given its attributes (see `kept_for_backward`)."""
        return self.kept_for_backward

    def label(self, a: Any) -> str:
        """The name shown in reports (conv becomes conv2d on a 2-D input)."""
        return f"{self.kind}{max(a.rank, 1)}d" if self.ranked_label else self.name

    # ---- lowering ---------------------------------------------------------------------------------
    def compose(self, f: Primitives[T], x: T, a: Any) -> T:
        """The op as an element-wise formula over its one input, written with `f`'s primitives (ops/compose.py):
        how a backend without a hand-written lowering for it computes it. Ops that are no such formula
        (convolution, pooling, dropout) do not define it; each backend lowers them by hand."""
        raise NotImplementedError(f"`{self.kind}` is not an element-wise formula")

    @property
    def composes(self) -> bool:
        """Whether the op defines `compose`."""
        return type(self).compose is not Op.compose

    def __repr__(self) -> str:
        return f"<op {self.name}>"

    # ---- helpers for subclasses -------------------------------------------------------------------
    def spatial_rank(self, x: Shape, minimum: int = 1) -> int:
        """Check a (C, *spatial) input against this op's rank and return the spatial rank."""
        rank = spatial_rank(x)
        if self.rank is not None and rank != self.rank:
            raise ShapeError(Code.E300,
                             f"`{self.name}` expects a {self.rank}-D input (C x {spatial_names(self.rank)}); "
                             f"got {fmt_shape(x)}",
                             hint=f"use `{self.kind}` to follow the input's rank" if self.kind != self.name else None)
        if rank < minimum:
            raise ShapeError(Code.E300, f"`{self.name}` needs channels and at least {minimum} spatial axis; "
                             f"got {fmt_shape(x)}",
                             hint="convolution and pooling take C x L, C x H x W or C x D x H x W inputs")
        if rank not in self.spatial_ranks:
            *most, last = (str(r) for r in self.spatial_ranks)
            supported = f"{', '.join(most)} or {last}" if most else last
            raise ShapeError(Code.E300, f"`{self.name}` supports {supported} spatial axes; got {fmt_shape(x)}")
        return rank


def per_axis(value: int | tuple[int, ...], rank: int, name: str, op: str) -> tuple[int, ...]:
    """Broadcast an int to every spatial axis, or check a tuple has one entry per axis."""
    if isinstance(value, int):
        return (value,) * rank
    if len(value) != rank:
        raise ShapeError(Code.E205, f"`{name}` of `{op}` has {len(value)} entries {value} but the input has "
                         f"{rank} spatial axes", hint=f"give one value or {rank} values")
    return tuple(value)


def resolve_padding(padding: Any, n: Shape, kernel: tuple[int, ...], stride: tuple[int, ...],
                    dilation: tuple[int, ...], op: str) -> tuple[tuple[int, int], ...]:
    """(before, after) padding per spatial axis for every accepted padding form."""
    rank = len(n)
    if padding == "valid":
        return ((0, 0),) * rank
    if padding == "same":
        return tuple(same_padding(n[i], kernel[i], stride[i], dilation[i]) for i in range(rank))
    if isinstance(padding, int):
        return ((padding, padding),) * rank
    if len(padding) != rank:
        raise ShapeError(Code.E205, f"`padding` of `{op}` has {len(padding)} entries but the input has {rank} "
                         "spatial axes", hint="give one value, one per axis, or one (before, after) pair per axis")
    return tuple((p, p) if isinstance(p, int) else (p[0], p[1]) for p in padding)


def sweep(op: Op, x: Shape, kernel: int | tuple[int, ...], stride: int | tuple[int, ...],
          padding: object, dilation: int | tuple[int, ...], ceil_mode: bool = False) -> Geometry:
    """Resolve a window sweep (convolution or pooling) over input x and check that it fits."""
    rank = op.spatial_rank(x)
    n = x[1:]
    k = per_axis(kernel, rank, "kernel", op.name)
    s = per_axis(stride, rank, "stride", op.name)
    d = per_axis(dilation, rank, "dilation", op.name)
    pads = resolve_padding(padding, n, k, s, d, op.name)
    out = []
    for axis in range(rank):
        padded = n[axis] + sum(pads[axis])
        k_eff = effective_kernel(k[axis], d[axis])
        size = conv_output_size(n[axis], k[axis], s[axis], *pads[axis], d[axis], ceil_mode)
        # PyTorch's rule: a window wider than the padded input is an error, except that pooling in ceil
        # mode keeps one output when the rounding up still leaves a window.
        if k_eff > padded and (not ceil_mode or size < 1):
            dilated = f" (dilated {k_eff})" if d[axis] > 1 else ""
            raise ShapeError(Code.E303, f"kernel {k[axis]}{dilated} exceeds padded input {padded} along axis "
                             f"{axis + 1} of {fmt_shape(x)}",
                             hint="reduce the kernel or dilation, add padding, or downsample less before it")
        out.append(size)
    return Geometry(k, s, d, pads, tuple(out), ceil_mode)


def spatial_size(shape: Shape) -> int:
    return prod(shape[1:])
