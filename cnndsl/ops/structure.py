"""Structural ops: identity, flatten and centre crop (U-Net skips)."""

from __future__ import annotations

from math import prod

from .base import NoParams, Op, OpParams, PositiveInts, Shape, ShapeError, Window, fmt_shape, per_axis
from .registry import register


@register()
class Identity(Op):
    kind = "identity"
    Params = NoParams
    family = "structure"
    summary = "Passes its input through unchanged (a named placeholder)."

    def infer_shape(self, p: NoParams, inputs: list[Shape]) -> Shape:
        return inputs[0]


@register()
class Flatten(Op):
    kind = "flatten"
    Params = NoParams
    family = "structure"
    summary = "Flattens the per-sample shape to one axis (C*H*W features)."

    def infer_shape(self, p: NoParams, inputs: list[Shape]) -> Shape:
        return (prod(inputs[0]),)


class CropParams(OpParams):
    size: PositiveInts | None = None


@register()
class Crop(Op):
    kind = "crop"
    Params = CropParams
    positional = ("size",)
    min_inputs = 1
    max_inputs = 2
    data_inputs = 1
    family = "structure"
    summary = ("Centre crop of the spatial axes: to `size`, or with `[x, like] -> crop` to the spatial size of "
               "`like` (U-Net skips).")
    descriptions = {"size": "a positive integer or a tuple of them, one per spatial axis"}

    def target(self, p: CropParams, inputs: list[Shape]) -> tuple[int, ...]:
        x = inputs[0]
        rank = self.spatial_rank(x)
        if (p.size is None) == (len(inputs) == 1):
            raise ShapeError("E205", "`crop` takes either a `size` or a second input to match, not both",
                             hint="`x -> crop(388)` or `[x, like] -> crop`")
        if p.size is not None:
            return per_axis(p.size, rank, "size", self.name)
        like = inputs[1]
        if len(like) != len(x):
            raise ShapeError("E300", f"`crop` input {fmt_shape(x)} and reference {fmt_shape(like)} differ in rank")
        return like[1:]

    def infer_shape(self, p: CropParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        size = self.target(p, inputs)
        for axis, (n, m) in enumerate(zip(x[1:], size, strict=True)):
            if m > n:
                raise ShapeError("E306", f"`crop` to {m} exceeds the input size {n} along axis {axis + 1} of "
                                 f"{fmt_shape(x)}", hint="crop the larger tensor to the smaller one's size")
        return (x[0], *size)

    def windows(self, p: CropParams, inputs: list[Shape], out: Shape) -> list[Window]:
        return [Window(1, 1, -((n - m) // 2)) for n, m in zip(inputs[0][1:], out[1:], strict=True)]
