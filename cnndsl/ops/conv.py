"""Convolution family: conv (1-D/2-D/3-D, grouped, depthwise, dilated), transposed convolution and the
locally connected layer (a convolution without weight sharing, as the notes compare them)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import prod
from typing import Literal

from .base import (
    DESCRIBE_BOOL,
    DESCRIBE_PADDING,
    DESCRIBE_POSITIVE,
    DESCRIBE_POSITIVE_AXES,
    Op,
    OpParams,
    Padding,
    ParamCount,
    PositiveInt,
    PositiveInts,
    Shape,
    ShapeError,
    Window,
    fmt_shape,
    per_axis,
    resolve_padding,
    spatial_size,
)
from .formulas import conv_output_size, conv_transpose_output_size, effective_kernel
from .registry import register


class ConvParams(OpParams):
    channels: PositiveInt
    kernel: PositiveInts
    stride: PositiveInts = 1
    padding: Padding = 0
    dilation: PositiveInts = 1
    groups: PositiveInt | Literal["depthwise"] = 1
    bias: bool = True
    frozen: bool = False


_CONV_DESCRIPTIONS = {
    "channels": DESCRIBE_POSITIVE, "kernel": DESCRIBE_POSITIVE_AXES, "stride": DESCRIBE_POSITIVE_AXES,
    "padding": DESCRIBE_PADDING, "dilation": DESCRIBE_POSITIVE_AXES, "bias": DESCRIBE_BOOL,
    "groups": "a positive integer dividing both channel counts, or `depthwise`", "frozen": DESCRIBE_BOOL,
    "output_padding": "a non-negative integer or a tuple of them, one per spatial axis",
}


@dataclass(frozen=True)
class Geometry:
    """A window sweep resolved against one input: everything per spatial axis."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    out: tuple[int, ...]

    @property
    def effective(self) -> tuple[int, ...]:
        return tuple(effective_kernel(k, d) for k, d in zip(self.kernel, self.dilation, strict=True))


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
            raise ShapeError("E303", f"kernel {k[axis]}{dilated} exceeds padded input {padded} along axis "
                             f"{axis + 1} of {fmt_shape(x)}",
                             hint="reduce the kernel or dilation, add padding, or downsample less before it")
        out.append(size)
    return Geometry(k, s, d, pads, tuple(out))


def sweep_windows(g: Geometry) -> list[Window]:
    return [Window(k, s, p[0]) for k, s, p in zip(g.effective, g.stride, g.padding, strict=True)]


def _groups(p: ConvParams, in_channels: int, op: Op) -> int:
    groups = in_channels if p.groups == "depthwise" else p.groups
    if in_channels % groups or p.channels % groups:
        raise ShapeError("E305", f"groups={groups} must divide both input channels {in_channels} and output "
                         f"channels {p.channels}",
                         hint="for a depthwise convolution use `groups=depthwise` and a channel count "
                              "that is a multiple of the input's")
    return groups


@register("conv1d", "conv2d", "conv3d")
class Conv(Op):
    kind = "conv"
    Params = ConvParams
    positional = ("channels", "kernel")
    family = "convolution"
    ranked_label = True
    summary = "Convolution over 1, 2 or 3 spatial axes (follows the input's rank; conv1d/2d/3d fix it)."
    descriptions = _CONV_DESCRIPTIONS

    def geometry(self, p: ConvParams, x: Shape) -> Geometry:
        return sweep(self, x, p.kernel, p.stride, p.padding, p.dilation)

    def infer_shape(self, p: ConvParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        g = self.geometry(p, x)
        _groups(p, x[0], self)
        return (p.channels, *g.out)

    def _weights(self, p: ConvParams, x: Shape) -> int:
        k = per_axis(p.kernel, len(x) - 1, "kernel", self.name)
        return p.channels * (x[0] // _groups(p, x[0], self)) * prod(k)

    def param_count(self, p: ConvParams, inputs: list[Shape], out: Shape) -> ParamCount:
        return ParamCount(self._weights(p, inputs[0]) + (p.channels if p.bias else 0))

    def weight_macs(self, p: ConvParams, inputs: list[Shape], out: Shape) -> int:
        return self._weights(p, inputs[0]) * spatial_size(out)

    def torchinfo_macs(self, p: ConvParams, inputs: list[Shape], out: Shape, params: int) -> int:
        return params * spatial_size(out)  # torchinfo: (weight + bias) x output positions

    def darknet_macs(self, p: ConvParams, inputs: list[Shape], out: Shape) -> int:
        return self.weight_macs(p, inputs, out)

    def windows(self, p: ConvParams, inputs: list[Shape], out: Shape) -> list[Window]:
        return sweep_windows(self.geometry(p, inputs[0]))


class ConvTransposeParams(OpParams):
    channels: PositiveInt
    kernel: PositiveInts
    stride: PositiveInts = 1
    padding: int | tuple[int, ...] = 0
    output_padding: int | tuple[int, ...] = 0
    dilation: PositiveInts = 1
    groups: PositiveInt = 1
    bias: bool = True
    frozen: bool = False


@register("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
class ConvTranspose(Op):
    kind = "conv_transpose"
    Params = ConvTransposeParams
    positional = ("channels", "kernel")
    family = "convolution"
    ranked_label = True
    summary = "Transposed convolution (learned up-sampling); symmetric padding as in PyTorch."
    descriptions = {**_CONV_DESCRIPTIONS, "padding": "a non-negative integer or a tuple of them, one per axis",
                    "groups": "a positive integer dividing both channel counts"}

    def _axes(self, p: ConvTransposeParams, x: Shape) -> tuple[tuple[int, ...], ...]:
        rank = self.spatial_rank(x)
        k = per_axis(p.kernel, rank, "kernel", self.name)
        s = per_axis(p.stride, rank, "stride", self.name)
        pad = per_axis(p.padding, rank, "padding", self.name)
        opad = per_axis(p.output_padding, rank, "output_padding", self.name)
        d = per_axis(p.dilation, rank, "dilation", self.name)
        return k, s, pad, opad, d

    def infer_shape(self, p: ConvTransposeParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        k, s, pad, opad, d = self._axes(p, x)
        if x[0] % p.groups or p.channels % p.groups:
            raise ShapeError("E305", f"groups={p.groups} must divide both input channels {x[0]} and output "
                             f"channels {p.channels}")
        out = []
        for axis, n in enumerate(x[1:]):
            if pad[axis] < 0 or opad[axis] < 0:
                raise ShapeError("E205", f"padding and output_padding of `{self.name}` must be non-negative; "
                                 f"got {pad[axis]} and {opad[axis]}")
            if opad[axis] >= max(s[axis], d[axis]):
                raise ShapeError("E306", f"output_padding {opad[axis]} must be smaller than stride {s[axis]} or "
                                 f"dilation {d[axis]}",
                                 hint="output_padding only picks among the sizes a stride > 1 makes ambiguous")
            size = conv_transpose_output_size(n, k[axis], s[axis], pad[axis], pad[axis], d[axis], opad[axis])
            if size <= 0:
                raise ShapeError("E304", f"output size {size} along axis {axis + 1} is not positive "
                                 f"(input {fmt_shape(x)}, padding {pad[axis]})",
                                 hint="padding of a transposed convolution removes output positions; reduce it")
            out.append(size)
        return (p.channels, *out)

    def _weights(self, p: ConvTransposeParams, x: Shape) -> int:
        k = per_axis(p.kernel, len(x) - 1, "kernel", self.name)
        return x[0] * (p.channels // p.groups) * prod(k)

    def param_count(self, p: ConvTransposeParams, inputs: list[Shape], out: Shape) -> ParamCount:
        return ParamCount(self._weights(p, inputs[0]) + (p.channels if p.bias else 0))

    def weight_macs(self, p: ConvTransposeParams, inputs: list[Shape], out: Shape) -> int:
        # every input element is multiplied by the (C_out/groups x kernel) weights it scatters to
        return self._weights(p, inputs[0]) * spatial_size(inputs[0])

    def torchinfo_macs(self, p: ConvTransposeParams, inputs: list[Shape], out: Shape, params: int) -> int:
        return params * spatial_size(out)

    def windows(self, p: ConvTransposeParams, inputs: list[Shape], out: Shape) -> list[Window]:
        # Output j reads the inputs i with i*s = j + pad - t*d for t < k: at most floor((k_eff-1)/s)+1 of them,
        # centred (half-pixel) at (j + pad - (k_eff-1)/2) / s, i.e. a window at stride 1/s.
        k, s, pad, _, d = self._axes(p, inputs[0])
        result = []
        for axis in range(len(k)):
            k_eff = effective_kernel(k[axis], d[axis])
            reads = (k_eff - 1) // s[axis] + 1
            padding = Fraction(reads - 1, 2) - Fraction(2 * pad[axis] - (k_eff - 1), 2 * s[axis])
            result.append(Window(reads, Fraction(1, s[axis]), padding))
        return result


class LocallyConnectedParams(OpParams):
    channels: PositiveInt
    kernel: PositiveInts
    stride: PositiveInts = 1
    padding: Padding = 0
    dilation: PositiveInts = 1
    bias: bool = True
    frozen: bool = False


@register("locally_connected1d", "locally_connected2d", "locally_connected3d")
class LocallyConnected(Op):
    kind = "locally_connected"
    Params = LocallyConnectedParams
    positional = ("channels", "kernel")
    family = "convolution"
    ranked_label = True
    summary = ("Locally connected layer: a convolution's windows with separate (unshared) weights and bias at "
               "every output position.")
    descriptions = _CONV_DESCRIPTIONS

    def geometry(self, p: LocallyConnectedParams, x: Shape) -> Geometry:
        return sweep(self, x, p.kernel, p.stride, p.padding, p.dilation)

    def infer_shape(self, p: LocallyConnectedParams, inputs: list[Shape]) -> Shape:
        return (p.channels, *self.geometry(p, inputs[0]).out)

    def param_count(self, p: LocallyConnectedParams, inputs: list[Shape], out: Shape) -> ParamCount:
        x = inputs[0]
        k = per_axis(p.kernel, len(x) - 1, "kernel", self.name)
        positions = spatial_size(out)
        weights = positions * p.channels * x[0] * prod(k)
        return ParamCount(weights + (positions * p.channels if p.bias else 0))

    def weight_macs(self, p: LocallyConnectedParams, inputs: list[Shape], out: Shape) -> int:
        x = inputs[0]
        return spatial_size(out) * p.channels * x[0] * prod(per_axis(p.kernel, len(x) - 1, "kernel", self.name))

    def windows(self, p: LocallyConnectedParams, inputs: list[Shape], out: Shape) -> list[Window]:
        return sweep_windows(self.geometry(p, inputs[0]))
