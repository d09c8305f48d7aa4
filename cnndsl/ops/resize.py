"""Resizing: up-sampling by a factor or to a size (nearest, (bi/tri)linear), and pixel shuffle / unshuffle
(sub-pixel up-sampling and space to depth)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from ..diagnostics import Code
from ..layout import fmt_shape
from .base import (
    DESCRIBE_BOOL,
    DESCRIBE_POSITIVE,
    Attrs,
    Kept,
    Op,
    OpParams,
    PositiveInt,
    PositiveInts,
    Shape,
    ShapeError,
    Window,
    half_pixel_window,
    per_axis,
)
from .registry import register

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}
_MODE_RANK = {"bilinear": 2, "trilinear": 3}


class UpsampleParams(OpParams):
    scale: PositiveInts | None = None
    size: PositiveInts | None = None
    mode: Literal["nearest", "linear", "bilinear", "trilinear"] = "nearest"
    align_corners: bool = False


@dataclass(frozen=True)
class UpsampleAttrs(Attrs[UpsampleParams]):
    factors: tuple[Fraction, ...]  # output size / input size per spatial axis (exact)

    @property
    def mode(self) -> str:
        """`nearest`, or the linear interpolation for the input's rank (`bilinear` on 2-D)."""
        return self.p.mode if self.p.mode != "linear" else _LINEAR_MODES.get(self.rank, "linear")


@register()
class Upsample(Op):
    kind = "upsample"
    kept_for_backward = Kept.NOTHING
    Params = UpsampleParams
    positional = ("scale",)
    family = "resize"
    summary = ("Up-sampling by an integer `scale` (or to a `size`): `mode=nearest` duplicates, `linear` "
               "interpolates (bilinear on 2-D, trilinear on 3-D inputs).")
    descriptions = {"scale": "a positive integer factor or a tuple of them, one per spatial axis",
                    "size": "a positive integer or a tuple of them, one per spatial axis",
                    "mode": "`nearest`, `linear`, `bilinear` or `trilinear`", "align_corners": DESCRIBE_BOOL}

    overwritable_output = True

    def resolve(self, p: UpsampleParams, inputs: tuple[Shape, ...]) -> UpsampleAttrs:
        x = inputs[0]
        factors = self._factors(p, x)
        return UpsampleAttrs(p, inputs, (x[0], *(int(n * f) for n, f in zip(x[1:], factors, strict=True))), factors)

    def _factors(self, p: UpsampleParams, x: Shape) -> tuple[Fraction, ...]:
        rank = self.spatial_rank(x)
        if (p.scale is None) == (p.size is None):
            raise ShapeError(Code.E205, "`upsample` takes exactly one of `scale` and `size`",
                             hint="`upsample(2)` doubles each spatial axis; `upsample(size=56)` resizes to 56")
        needed = _MODE_RANK.get(p.mode)
        if needed is not None and needed != rank:
            raise ShapeError(Code.E300, f"`upsample` mode={p.mode} needs a {needed}-D input; got {fmt_shape(x)}",
                             hint=f"mode=linear picks the interpolation for the input's rank ({_LINEAR_MODES[rank]})")
        if p.scale is not None:
            return tuple(Fraction(f) for f in per_axis(p.scale, rank, "scale", self.name))
        size = per_axis(p.size, rank, "size", self.name)  # type: ignore[arg-type]
        return tuple(Fraction(m, n) for n, m in zip(x[1:], size, strict=True))

    def windows(self, a: UpsampleAttrs) -> list[Window]:
        # Output j maps to input coordinate (j + 1/2)/f - 1/2 (half-pixel): nearest reads 1 input there,
        # linear interpolation reads 2.
        reads = 1 if a.p.mode == "nearest" else 2
        return [half_pixel_window(reads, f) for f in a.factors]

    def label(self, a: UpsampleAttrs) -> str:
        return f"upsample_{a.mode}"


class PixelShuffleParams(OpParams):
    factor: PositiveInt


class _PixelRearrange(Op):
    """Moves r x r blocks of positions to channels or back (the arguments and ranks both directions share)."""

    Params = PixelShuffleParams
    positional = ("factor",)
    family = "resize"
    spatial_ranks = (2,)  # as PyTorch's and TVM's pixel_shuffle
    descriptions = {"factor": DESCRIBE_POSITIVE}


@register()
class PixelShuffle(_PixelRearrange):
    kind = "pixel_shuffle"
    kept_for_backward = Kept.NOTHING
    summary = ("Sub-pixel up-sampling (Shi et al., CVPR 2016; PyTorch's PixelShuffle): C*r^2 x H x W becomes "
               "C x H*r x W*r, each r^2 channels spread over an r x r block of positions.")

    def output_shape(self, p: PixelShuffleParams, inputs: tuple[Shape, ...]) -> Shape:
        x, r = inputs[0], p.factor
        self.spatial_rank(x)
        if x[0] % (r * r):
            raise ShapeError(Code.E306, f"`pixel_shuffle({r})` needs channels divisible by {r}^2 = {r * r}; got "
                             f"{fmt_shape(x)}", hint=f"give the layer before it a multiple of {r * r} channels")
        return (x[0] // (r * r), *(n * r for n in x[1:]))

    def windows(self, a: Attrs[PixelShuffleParams]) -> list[Window]:
        return [half_pixel_window(1, a.p.factor)] * a.rank  # output j reads input j // r, as nearest up-sampling


@register()
class PixelUnshuffle(_PixelRearrange):
    kind = "pixel_unshuffle"
    kept_for_backward = Kept.NOTHING
    summary = ("Space to depth, the inverse of `pixel_shuffle` (PyTorch's PixelUnshuffle): C x H*r x W*r becomes "
               "C*r^2 x H x W.")

    def output_shape(self, p: PixelShuffleParams, inputs: tuple[Shape, ...]) -> Shape:
        x, r = inputs[0], p.factor
        self.spatial_rank(x)
        for axis, n in enumerate(x[1:]):
            if n % r:
                raise ShapeError(Code.E306, f"`pixel_unshuffle({r})` needs sizes divisible by {r}; axis {axis + 1} of "
                                 f"{fmt_shape(x)} is {n}", hint=f"crop or pad the input to a multiple of {r}")
        return (x[0] * r * r, *(n // r for n in x[1:]))

    def windows(self, a: Attrs[PixelShuffleParams]) -> list[Window]:
        r = a.p.factor
        return [Window(r, r, 0)] * a.rank  # output j gathers the r input positions j*r ... j*r + r - 1
