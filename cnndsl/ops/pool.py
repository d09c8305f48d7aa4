"""Pooling: max and average windows (with ceil mode), global and adaptive pooling."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from ..diagnostics import Code
from ..layout import fmt_shape
from .base import (
    DESCRIBE_BOOL,
    DESCRIBE_PADDING,
    DESCRIBE_POSITIVE_AXES,
    Attrs,
    Geometry,
    Kept,
    NoParams,
    Op,
    OpParams,
    Padding,
    PositiveInts,
    Shape,
    ShapeError,
    Window,
    WindowAttrs,
    per_axis,
    sweep,
)
from .formulas import widest_adaptive_window
from .registry import register


class PoolParams(OpParams):
    kernel: PositiveInts
    stride: PositiveInts | None = None  # default: the kernel (PyTorch's default)
    padding: Padding = 0
    dilation: PositiveInts = 1
    ceil: bool = False


class AvgPoolParams(OpParams):
    kernel: PositiveInts
    stride: PositiveInts | None = None
    padding: Padding = 0
    ceil: bool = False
    count_include_pad: bool = True


PoolAttrs = WindowAttrs[PoolParams | AvgPoolParams]

_POOL_DESCRIPTIONS = {
    "kernel": DESCRIBE_POSITIVE_AXES, "stride": DESCRIBE_POSITIVE_AXES + " (default: the kernel)",
    "padding": DESCRIBE_PADDING, "dilation": DESCRIBE_POSITIVE_AXES, "ceil": DESCRIBE_BOOL,
    "count_include_pad": DESCRIBE_BOOL,
}


class _WindowPool(Op):
    positional = ("kernel",)
    family = "pooling"
    ranked_label = True
    descriptions = _POOL_DESCRIPTIONS
    overwritable_output = True

    def resolve(self, p: PoolParams | AvgPoolParams, inputs: tuple[Shape, ...]) -> PoolAttrs:
        x = inputs[0]
        g = self.geometry(p, x)
        return WindowAttrs(p, inputs, (x[0], *g.out), g)

    def geometry(self, p: PoolParams | AvgPoolParams, x: Shape) -> Geometry:
        stride = p.kernel if p.stride is None else p.stride
        g = sweep(self, x, p.kernel, stride, p.padding, p.dilation if isinstance(p, PoolParams) else 1, p.ceil)
        for axis, (before, after) in enumerate(g.padding):
            # PyTorch rejects pooling padding beyond half the kernel: the window would see only padding.
            if max(before, after) > g.kernel[axis] // 2 and p.padding != "same":
                raise ShapeError(Code.E306, f"padding {max(before, after)} exceeds half the kernel "
                                 f"{g.kernel[axis]} along axis {axis + 1}",
                                 hint="pooling padding must be at most kernel // 2")
        return g

    def windows(self, a: PoolAttrs) -> list[Window]:
        return a.geometry.windows()


@register("maxpool1d", "maxpool2d", "maxpool3d")
class MaxPool(_WindowPool):
    kind = "maxpool"
    kept_extra = 2.0
    Params = PoolParams
    summary = "Max pooling; stride defaults to the kernel; `ceil=true` keeps a partial last window."


@register("avgpool1d", "avgpool2d", "avgpool3d")
class AvgPool(_WindowPool):
    kind = "avgpool"
    Params = AvgPoolParams
    summary = "Average (mean) pooling; stride defaults to the kernel; `ceil=true` keeps a partial last window."

    def geometry(self, p: PoolParams | AvgPoolParams, x: Shape) -> Geometry:
        g = super().geometry(p, x)
        if len(x) == 4:  # PyTorch's 3-D average pooling alone checks the unpadded input against the kernel
            for axis, (n, k) in enumerate(zip(x[1:], g.kernel, strict=True)):
                if n < k:
                    raise ShapeError(Code.E303, f"kernel {k} exceeds input {n} along axis {axis + 1} of "
                                     f"{fmt_shape(x)} (3-D average pooling does not count padding here)",
                                     hint="PyTorch's avg_pool3d needs the unpadded input as large as the kernel")
        return g


class _GlobalPool(Op):
    Params = NoParams
    family = "pooling"
    overwritable_output = True

    def output_shape(self, p: NoParams, inputs: tuple[Shape, ...]) -> Shape:
        x = inputs[0]
        rank = self.spatial_rank(x)
        return (x[0],) + (1,) * rank  # keeps unit spatial axes, like AdaptiveAvgPool(1)

    def windows(self, a: Attrs[NoParams]) -> list[Window]:
        return [Window(n, n, 0) for n in a.x[1:]]


@register()
class GlobalAvgPool(_GlobalPool):
    kind = "global_avgpool"
    kept_for_backward = Kept.NOTHING
    summary = "Mean over all spatial positions; output C x 1 (x 1 ...)."


@register()
class GlobalMaxPool(_GlobalPool):
    kind = "global_maxpool"
    kept_extra = 2.0
    summary = "Max over all spatial positions; output C x 1 (x 1 ...)."


class AdaptivePoolParams(OpParams):
    size: PositiveInts


class _AdaptivePool(Op):
    Params = AdaptivePoolParams
    positional = ("size",)
    family = "pooling"
    ranked_label = True
    descriptions = {"size": DESCRIBE_POSITIVE_AXES}
    overwritable_output = True

    def output_shape(self, p: AdaptivePoolParams, inputs: tuple[Shape, ...]) -> Shape:
        x = inputs[0]
        size = per_axis(p.size, self.spatial_rank(x), "size", self.name)
        return (x[0], *size)

    def windows(self, a: Attrs[AdaptivePoolParams]) -> list[Window]:
        result = []
        for n, m in zip(a.x[1:], a.out[1:], strict=True):
            if n % m == 0:
                result.append(Window(n // m, n // m, 0))
                continue
            # Uneven windows: the widest one bounds the field; positions advance by n/m on average.
            widest, first = widest_adaptive_window(n, m), -(-n // m)
            result.append(Window(widest, Fraction(n, m), Fraction(widest - first, 2), uneven=True))
        return result


@register()
class AdaptiveAvgPool(_AdaptivePool):
    kind = "adaptive_avgpool"
    summary = "Average pooling to a fixed output size (PyTorch's adaptive windows)."

    def keeps_for_backward(self, a: Any) -> Kept:
        # to a single position PyTorch takes a mean, whose backward needs only the input's shape
        return Kept.NOTHING if all(n == 1 for n in a.out[1:]) else Kept.INPUT


@register()
class AdaptiveMaxPool(_AdaptivePool):
    kind = "adaptive_maxpool"
    kept_extra = 2.0
    summary = "Max pooling to a fixed output size (PyTorch's adaptive windows)."

