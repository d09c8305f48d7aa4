"""Structural ops: identity, flatten and centre crop (U-Net skips)."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..layout import fmt_shape
from .base import (
    Attrs,
    NonNegativeInt,
    NoParams,
    Op,
    OpParams,
    PositiveInts,
    Shape,
    ShapeError,
    Window,
    per_axis,
)
from .registry import register


@register()
class Identity(Op):
    kind = "identity"
    Params = NoParams
    family = "structure"
    summary = "Passes its input through unchanged (a named placeholder)."

    def output_shape(self, p: NoParams, inputs: tuple[Shape, ...]) -> Shape:
        return inputs[0]


@register()
class Flatten(Op):
    kind = "flatten"
    Params = NoParams
    family = "structure"
    summary = "Flattens the per-sample shape to one axis (C*H*W features)."

    def output_shape(self, p: NoParams, inputs: tuple[Shape, ...]) -> Shape:
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

    def output_shape(self, p: ReshapeParams, inputs: tuple[Shape, ...]) -> Shape:
        x, shape = inputs[0], (p.shape,) if isinstance(p.shape, int) else tuple(p.shape)
        if prod(shape) != prod(x):
            raise ShapeError("E306", f"`reshape` to {fmt_shape(shape)} ({prod(shape):,} elements) cannot hold "
                             f"{fmt_shape(x)} ({prod(x):,} elements)", hint="the sizes' products must be equal")
        return shape

    def windows(self, a: Attrs[ReshapeParams]) -> list[Window] | None:
        return None  # positions are reinterpreted: no spatial correspondence survives


@dataclass(frozen=True)
class CropAttrs(Attrs[CropParams]):
    starts: tuple[int, ...]  # the first kept position per spatial axis (centred, or `offset`)


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

    def resolve(self, p: CropParams, inputs: tuple[Shape, ...]) -> CropAttrs:
        x = inputs[0]
        size = self._size(p, inputs)
        for axis, (n, m) in enumerate(zip(x[1:], size, strict=True)):
            if m > n:
                raise ShapeError("E306", f"`crop` to {m} exceeds the input size {n} along axis {axis + 1} of "
                                 f"{fmt_shape(x)}", hint="crop the larger tensor to the smaller one's size")
        if p.offset is None:
            starts = tuple((n - m) // 2 for n, m in zip(x[1:], size, strict=True))
        else:
            starts = per_axis(p.offset, len(x) - 1, "offset", self.name)
        for axis, (start, n, m) in enumerate(zip(starts, x[1:], size, strict=True)):
            if start + m > n:
                raise ShapeError("E306", f"`crop` offset {start} + size {m} exceeds the input size {n} along axis "
                                 f"{axis + 1} of {fmt_shape(x)}", hint=f"use an offset of at most {n - m}")
        return CropAttrs(p, inputs, (x[0], *size), starts)

    def _size(self, p: CropParams, inputs: tuple[Shape, ...]) -> tuple[int, ...]:
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

    def windows(self, a: CropAttrs) -> list[Window]:
        return [Window(1, 1, -start) for start in a.starts]
