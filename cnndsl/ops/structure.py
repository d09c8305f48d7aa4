"""Structural ops: identity, flatten and centre crop (U-Net skips)."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..diagnostics import Code
from ..layout import fmt_shape
from .base import (
    Attrs,
    Kept,
    NonNegativeInt,
    NoParams,
    Op,
    OpParams,
    PositiveInt,
    PositiveInts,
    Shape,
    ShapeError,
    Window,
    per_axis,
)
from .registry import register


class Input(Op):
    """A tensor the network is given (`input x: 3 x 224 x 224`): the op of a graph's input nodes. Not
    registered: it is declared, never called in a chain."""

    kind = "input"
    Params = NoParams
    min_inputs = max_inputs = 0
    family = "structure"
    kept_for_backward = Kept.NOTHING


INPUT = Input()


@register()
class Identity(Op):
    kind = "identity"
    returns_view = True
    kept_for_backward = Kept.NOTHING
    Params = NoParams
    family = "structure"
    summary = "Passes its input through unchanged (a named placeholder)."

    def output_shape(self, p: NoParams, inputs: tuple[Shape, ...]) -> Shape:
        return inputs[0]


@register()
class Flatten(Op):
    kind = "flatten"
    returns_view = True
    kept_for_backward = Kept.NOTHING
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
    returns_view = True
    kept_for_backward = Kept.NOTHING
    Params = ReshapeParams
    positional = ("shape",)
    family = "structure"
    summary = ("Reinterprets the per-sample elements as another shape of the same size, e.g. YOLOv1's 1,470 "
               "outputs as `reshape((30, 7, 7))`.")
    descriptions = {"shape": "a positive integer or a tuple of them: the per-sample shape"}

    def output_shape(self, p: ReshapeParams, inputs: tuple[Shape, ...]) -> Shape:
        x, shape = inputs[0], (p.shape,) if isinstance(p.shape, int) else tuple(p.shape)
        if prod(shape) != prod(x):
            raise ShapeError(Code.E306, f"`reshape` to {fmt_shape(shape)} ({prod(shape):,} elements) cannot hold "
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
    returns_view = True
    kept_for_backward = Kept.NOTHING
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
                raise ShapeError(Code.E306, f"`crop` to {m} exceeds the input size {n} along axis {axis + 1} of "
                                 f"{fmt_shape(x)}", hint="crop the larger tensor to the smaller one's size")
        if p.offset is None:
            starts = tuple((n - m) // 2 for n, m in zip(x[1:], size, strict=True))
        else:
            starts = per_axis(p.offset, len(x) - 1, "offset", self.name)
        for axis, (start, n, m) in enumerate(zip(starts, x[1:], size, strict=True)):
            if start + m > n:
                raise ShapeError(Code.E306, f"`crop` offset {start} + size {m} exceeds the input size {n} along axis "
                                 f"{axis + 1} of {fmt_shape(x)}", hint=f"use an offset of at most {n - m}")
        return CropAttrs(p, inputs, (x[0], *size), starts)

    def _size(self, p: CropParams, inputs: tuple[Shape, ...]) -> tuple[int, ...]:
        x = inputs[0]
        rank = self.spatial_rank(x)
        if (p.size is None) == (len(inputs) == 1):
            raise ShapeError(Code.E205, "`crop` takes either a `size` or a second input to match, not both",
                             hint="`x -> crop(388)` or `[x, like] -> crop`")
        if p.size is not None:
            return per_axis(p.size, rank, "size", self.name)
        like = inputs[1]
        if len(like) != len(x):
            raise ShapeError(Code.E300, f"`crop` input {fmt_shape(x)} and reference {fmt_shape(like)} differ in rank")
        return like[1:]

    def windows(self, a: CropAttrs) -> list[Window]:
        return [Window(1, 1, -start) for start in a.starts]


class SliceParams(OpParams):
    start: int
    stop: int
    dim: int = 0  # per-sample axis: 0 slices channels


@dataclass(frozen=True)
class SliceAttrs(Attrs[SliceParams]):
    axis: int  # the per-sample axis, negative `dim` resolved
    start: int
    stop: int  # negative bounds resolved, 0 <= start < stop <= size


@register()
class Slice(Op):
    kind = "slice"
    returns_view = True
    kept_for_backward = Kept.NOTHING
    Params = SliceParams
    positional = ("start", "stop")
    family = "structure"
    summary = ("Positions start to stop - 1 along a per-sample axis (default 0: channels); negative bounds count "
               "from the end. Channel splits: ShuffleNet's halves, CSP's partial paths, Darknet's `[route] groups=`.")
    descriptions = {"start": "an integer index", "stop": "an integer index after the last one kept",
                    "dim": "an integer axis of the per-sample shape (0: channels)"}

    def resolve(self, p: SliceParams, inputs: tuple[Shape, ...]) -> SliceAttrs:
        x = inputs[0]
        if not -len(x) <= p.dim < len(x):
            raise ShapeError(Code.E205, f"`slice` dim {p.dim} is out of range for {fmt_shape(x)}",
                             hint=f"dims count per sample, from 0 (channels) to {len(x) - 1}")
        axis = p.dim % len(x)
        n = x[axis]
        start, stop = (p.start + n if p.start < 0 else p.start), (p.stop + n if p.stop < 0 else p.stop)
        if not 0 <= start < stop <= n:
            raise ShapeError(Code.E306, f"`slice({p.start}, {p.stop})` keeps nothing or runs past axis {axis} of "
                             f"{fmt_shape(x)} (size {n})", hint=f"choose 0 <= start < stop <= {n}")
        return SliceAttrs(p, inputs, (*x[:axis], stop - start, *x[axis + 1:]), axis, start, stop)

    def windows(self, a: SliceAttrs) -> list[Window] | None:
        if len(a.out) < 2:
            return None
        # a spatial slice shifts the field as a crop does; a channel slice keeps it
        return [Window(1, 1, -a.start if axis == a.axis else 0) for axis in range(1, len(a.out))]


class ChannelShuffleParams(OpParams):
    groups: PositiveInt


@register()
class ChannelShuffle(Op):
    kind = "channel_shuffle"
    kept_for_backward = Kept.NOTHING
    Params = ChannelShuffleParams
    positional = ("groups",)
    family = "structure"
    summary = ("Interleaves the channels of `groups` groups (ShuffleNet): channel g*k + i moves to i*groups + g, "
               "as PyTorch's ChannelShuffle.")
    descriptions = {"groups": "a positive integer dividing the channels"}

    def output_shape(self, p: ChannelShuffleParams, inputs: tuple[Shape, ...]) -> Shape:
        x = inputs[0]
        if x[0] % p.groups:
            raise ShapeError(Code.E305, f"channel_shuffle groups={p.groups} must divide the {x[0]} channels of "
                             f"{fmt_shape(x)}", hint="choose a divisor of the channel count")
        return x
