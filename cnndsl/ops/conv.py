"""Convolution family: conv (1-D/2-D/3-D, grouped, depthwise, dilated), transposed convolution and the
locally connected layer (a convolution without weight sharing, as the notes compare them)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import prod
from typing import Literal

from ..diagnostics import Code
from ..layout import fmt_shape
from .base import (
    DESCRIBE_BOOL,
    DESCRIBE_PADDING,
    DESCRIBE_POSITIVE,
    DESCRIBE_POSITIVE_AXES,
    Attrs,
    Macs,
    Op,
    Padding,
    PositiveInt,
    PositiveInts,
    Shape,
    ShapeError,
    Tensor,
    TrainableParams,
    Window,
    WindowAttrs,
    learned,
    per_axis,
    spatial_size,
    sweep,
    upsampling_window,
)
from .formulas import conv_transpose_output_size, effective_kernel
from .registry import register


class ConvParams(TrainableParams):
    channels: PositiveInt
    kernel: PositiveInts
    stride: PositiveInts = 1
    padding: Padding = 0
    dilation: PositiveInts = 1
    groups: PositiveInt | Literal["depthwise"] = 1
    bias: bool = True


_CONV_DESCRIPTIONS = {
    "channels": DESCRIBE_POSITIVE, "kernel": DESCRIBE_POSITIVE_AXES, "stride": DESCRIBE_POSITIVE_AXES,
    "padding": DESCRIBE_PADDING, "dilation": DESCRIBE_POSITIVE_AXES, "bias": DESCRIBE_BOOL,
    "groups": "a positive integer dividing both channel counts, or `depthwise`", "frozen": DESCRIBE_BOOL,
    "output_padding": "a non-negative integer or a tuple of them, one per spatial axis",
}


def _groups(p: ConvParams, in_channels: int) -> int:
    """The group count, with `depthwise` resolved to one group per input channel."""
    groups = in_channels if p.groups == "depthwise" else p.groups
    if in_channels % groups or p.channels % groups:
        raise ShapeError(Code.E305, f"groups={groups} must divide both input channels {in_channels} and output "
                         f"channels {p.channels}",
                         hint="for a depthwise convolution use `groups=depthwise` and a channel count "
                              "that is a multiple of the input's")
    return groups


@dataclass(frozen=True)
class ConvAttrs(WindowAttrs[ConvParams]):
    """`groups`: the argument with `depthwise` resolved."""

    @property
    def weights(self) -> int:
        """Elements of the weight tensor: C_out x C_in/groups x kernel."""
        return self.p.channels * (self.x[0] // self.groups) * prod(self.geometry.kernel)


@register("conv1d", "conv2d", "conv3d")
class Conv(Op):
    kind = "conv"
    Params = ConvParams
    positional = ("channels", "kernel")
    family = "convolution"
    ranked_label = True
    summary = "Convolution over 1, 2 or 3 spatial axes (follows the input's rank; conv1d/2d/3d fix it)."
    descriptions = _CONV_DESCRIPTIONS

    overwritable_output = True
    tensor_core_channels = True

    def resolve(self, p: ConvParams, inputs: tuple[Shape, ...]) -> ConvAttrs:
        x = inputs[0]
        g = sweep(self, x, p.kernel, p.stride, p.padding, p.dilation)
        return ConvAttrs(p, inputs, (p.channels, *g.out), g, _groups(p, x[0]))

    def tensors(self, a: ConvAttrs) -> dict[str, Tensor]:
        return learned(weight=(a.p.channels, a.x[0] // a.groups, *a.geometry.kernel),
                       bias=(a.p.channels,) if a.p.bias else None)

    def macs(self, a: ConvAttrs, params: int) -> Macs:
        weight_macs = a.weights * spatial_size(a.out)
        return Macs(weight_macs, params * spatial_size(a.out), weight_macs)  # torchinfo: (weight + bias) x positions

    def windows(self, a: ConvAttrs) -> list[Window]:
        return a.geometry.windows()


class ConvTransposeParams(TrainableParams):
    channels: PositiveInt
    kernel: PositiveInts
    stride: PositiveInts = 1
    padding: int | tuple[int, ...] = 0
    output_padding: int | tuple[int, ...] = 0
    dilation: PositiveInts = 1
    groups: PositiveInt = 1
    bias: bool = True


@dataclass(frozen=True)
class ConvTransposeAttrs(Attrs[ConvTransposeParams]):
    """Per spatial axis: kernel, stride, padding (symmetric, as PyTorch's), output padding, dilation."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]

    @property
    def weights(self) -> int:
        """Elements of the weight tensor: C_in x C_out/groups x kernel."""
        return self.x[0] * (self.p.channels // self.p.groups) * prod(self.kernel)


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

    overwritable_output = True
    tensor_core_channels = True

    def resolve(self, p: ConvTransposeParams, inputs: tuple[Shape, ...]) -> ConvTransposeAttrs:
        x = inputs[0]
        rank = self.spatial_rank(x)
        k = per_axis(p.kernel, rank, "kernel", self.name)
        s = per_axis(p.stride, rank, "stride", self.name)
        pad = per_axis(p.padding, rank, "padding", self.name)
        opad = per_axis(p.output_padding, rank, "output_padding", self.name)
        d = per_axis(p.dilation, rank, "dilation", self.name)
        if x[0] % p.groups or p.channels % p.groups:
            raise ShapeError(Code.E305, f"groups={p.groups} must divide both input channels {x[0]} and output "
                             f"channels {p.channels}")
        out = []
        for axis, n in enumerate(x[1:]):
            if pad[axis] < 0 or opad[axis] < 0:
                raise ShapeError(Code.E205, f"padding and output_padding of `{self.name}` must be non-negative; "
                                 f"got {pad[axis]} and {opad[axis]}")
            if opad[axis] >= max(s[axis], d[axis]):
                raise ShapeError(Code.E306, f"output_padding {opad[axis]} must be smaller than stride {s[axis]} or "
                                 f"dilation {d[axis]}",
                                 hint="output_padding only picks among the sizes a stride > 1 makes ambiguous")
            size = conv_transpose_output_size(n, k[axis], s[axis], pad[axis], pad[axis], d[axis], opad[axis])
            if size <= 0:
                raise ShapeError(Code.E304, f"output size {size} along axis {axis + 1} is not positive "
                                 f"(input {fmt_shape(x)}, padding {pad[axis]})",
                                 hint="padding of a transposed convolution removes output positions; reduce it")
            out.append(size)
        return ConvTransposeAttrs(p, inputs, (p.channels, *out), k, s, pad, opad, d)

    def tensors(self, a: ConvTransposeAttrs) -> dict[str, Tensor]:
        return learned(weight=(a.x[0], a.p.channels // a.p.groups, *a.kernel),
                       bias=(a.p.channels,) if a.p.bias else None)

    def macs(self, a: ConvTransposeAttrs, params: int) -> Macs:
        # every input element is multiplied by the (C_out/groups x kernel) weights it scatters to
        return Macs(a.weights * spatial_size(a.x), params * spatial_size(a.out), 0)

    def windows(self, a: ConvTransposeAttrs) -> list[Window]:
        # Output j reads the inputs i with i*s = j + pad - t*d for t < k: at most floor((k_eff-1)/s)+1 of them,
        # centred (half-pixel) at (j + pad - (k_eff-1)/2) / s, i.e. a window at stride 1/s.
        result = []
        for k, s, pad, d in zip(a.kernel, a.stride, a.padding, a.dilation, strict=True):
            k_eff = effective_kernel(k, d)
            result.append(upsampling_window((k_eff - 1) // s + 1, s, pad - Fraction(k_eff - 1, 2)))
        return result


class LocallyConnectedParams(TrainableParams):
    channels: PositiveInt
    kernel: PositiveInts
    stride: PositiveInts = 1
    padding: Padding = 0
    dilation: PositiveInts = 1
    bias: bool = True


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
    overwritable_output = True

    def resolve(self, p: LocallyConnectedParams, inputs: tuple[Shape, ...]) -> WindowAttrs[LocallyConnectedParams]:
        g = sweep(self, inputs[0], p.kernel, p.stride, p.padding, p.dilation)
        return WindowAttrs(p, inputs, (p.channels, *g.out), g)

    def _weights(self, a: WindowAttrs[LocallyConnectedParams]) -> int:
        """One weight per output position, output channel, input channel and kernel offset."""
        return spatial_size(a.out) * a.p.channels * a.x[0] * prod(a.geometry.kernel)

    def tensors(self, a: WindowAttrs[LocallyConnectedParams]) -> dict[str, Tensor]:
        """Per output position: weight (C_out, *out, C_in x kernel), bias (C_out, *out)."""
        out = a.out[1:]
        return learned(weight=(a.p.channels, *out, a.x[0] * prod(a.geometry.kernel)),
                       bias=(a.p.channels, *out) if a.p.bias else None)

    def macs(self, a: WindowAttrs[LocallyConnectedParams], params: int) -> Macs:
        return Macs(self._weights(a), params, 0)

    def windows(self, a: WindowAttrs[LocallyConnectedParams]) -> list[Window]:
        return a.geometry.windows()
