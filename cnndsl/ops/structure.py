"""Structural ops: identity, flatten and centre crop (U-Net skips)."""

from __future__ import annotations

from math import prod

from .base import (
    NonNegativeInt,
    NoParams,
    Op,
    OpParams,
    PositiveInts,
    Shape,
    ShapeError,
    Window,
    fmt_shape,
    per_axis,
)
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
    offset: NonNegativeInt | tuple[NonNegativeInt, ...] | None = None  # None: centred


class ReshapeParams(OpParams):
    shape: PositiveInts


@register()
class Reshape(Op):
    kind = "reshape"
    Params = ReshapeParams
    positional = ("shape",)
    family = "structure"
    summary = ("Reinterprets the per-sample elements as another shape of the same size, e.g. YOLOv1's 1,470 "
               "outputs as `reshape((30, 7, 7))`.")
    descriptions = {"shape": "a positive integer or a tuple of them: the per-sample shape"}

    def target(self, p: ReshapeParams) -> Shape:
        return (p.shape,) if isinstance(p.shape, int) else tuple(p.shape)

    def infer_shape(self, p: ReshapeParams, inputs: list[Shape]) -> Shape:
        x, shape = inputs[0], self.target(p)
        if prod(shape) != prod(x):
            raise ShapeError("E306", f"`reshape` to {fmt_shape(shape)} ({prod(shape):,} elements) cannot hold "
                             f"{fmt_shape(x)} ({prod(x):,} elements)", hint="the sizes' products must be equal")
        return shape

    def windows(self, p: ReshapeParams, inputs: list[Shape], out: Shape) -> list[Window] | None:
        return None  # positions are reinterpreted: no spatial correspondence survives


@register()
class Crop(Op):
    kind = "crop"
    Params = CropParams
    positional = ("size",)
    min_inputs = 1
    max_inputs = 2
    data_inputs = 1
    family = "structure"
    summary = ("Crop of the spatial axes: to `size`, or with `[x, like] -> crop` to the spatial size of `like` "
               "(U-Net skips); centred unless `offset` gives the first kept position (Caffe's crop, FCN).")
    descriptions = {"size": "a positive integer or a tuple of them, one per spatial axis",
                    "offset": "a non-negative integer or a tuple of them, one per spatial axis"}

    def starts(self, p: CropParams, inputs: list[Shape], out: Shape) -> tuple[int, ...]:
        """The first kept position per spatial axis."""
        x = inputs[0]
        if p.offset is None:
            return tuple((n - m) // 2 for n, m in zip(x[1:], out[1:], strict=True))
        return per_axis(p.offset, len(x) - 1, "offset", self.name)

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
        out = (x[0], *size)
        for axis, (start, n, m) in enumerate(zip(self.starts(p, inputs, out), x[1:], size, strict=True)):
            if start + m > n:
                raise ShapeError("E306", f"`crop` offset {start} + size {m} exceeds the input size {n} along axis "
                                 f"{axis + 1} of {fmt_shape(x)}", hint=f"use an offset of at most {n - m}")
        return out

    def windows(self, p: CropParams, inputs: list[Shape], out: Shape) -> list[Window]:
        return [Window(1, 1, -start) for start in self.starts(p, inputs, out)]
