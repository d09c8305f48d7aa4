"""Up-sampling by an integer factor or to a size: nearest (duplicate) and (bi/tri)linear."""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

from .base import DESCRIBE_BOOL, Op, OpParams, PositiveInts, Shape, ShapeError, Window, fmt_shape, per_axis
from .registry import register

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}
_MODE_RANK = {"bilinear": 2, "trilinear": 3}


class UpsampleParams(OpParams):
    scale: PositiveInts | None = None
    size: PositiveInts | None = None
    mode: Literal["nearest", "linear", "bilinear", "trilinear"] = "nearest"
    align_corners: bool = False


@register()
class Upsample(Op):
    kind = "upsample"
    Params = UpsampleParams
    positional = ("scale",)
    family = "resize"
    summary = ("Up-sampling by an integer `scale` (or to a `size`): `mode=nearest` duplicates, `linear` "
               "interpolates (bilinear on 2-D, trilinear on 3-D inputs).")
    descriptions = {"scale": "a positive integer factor or a tuple of them, one per spatial axis",
                    "size": "a positive integer or a tuple of them, one per spatial axis",
                    "mode": "`nearest`, `linear`, `bilinear` or `trilinear`", "align_corners": DESCRIBE_BOOL}

    def factors(self, p: UpsampleParams, x: Shape) -> tuple[Fraction, ...]:
        rank = self.spatial_rank(x)
        if (p.scale is None) == (p.size is None):
            raise ShapeError("E205", "`upsample` takes exactly one of `scale` and `size`",
                             hint="`upsample(2)` doubles each spatial axis; `upsample(size=56)` resizes to 56")
        needed = _MODE_RANK.get(p.mode)
        if needed is not None and needed != rank:
            raise ShapeError("E300", f"`upsample` mode={p.mode} needs a {needed}-D input; got {fmt_shape(x)}",
                             hint=f"mode=linear picks the interpolation for the input's rank ({_LINEAR_MODES[rank]})")
        if p.scale is not None:
            return tuple(Fraction(f) for f in per_axis(p.scale, rank, "scale", self.name))
        size = per_axis(p.size, rank, "size", self.name)  # type: ignore[arg-type]
        return tuple(Fraction(m, n) for n, m in zip(x[1:], size, strict=True))

    def infer_shape(self, p: UpsampleParams, inputs: list[Shape]) -> Shape:
        x = inputs[0]
        factors = self.factors(p, x)
        return (x[0], *(int(n * f) for n, f in zip(x[1:], factors, strict=True)))

    def windows(self, p: UpsampleParams, inputs: list[Shape], out: Shape) -> list[Window]:
        # Output j maps to input coordinate (j + 1/2)/f - 1/2 (half-pixel): nearest reads 1 input there,
        # linear interpolation reads 2.
        reads = 1 if p.mode == "nearest" else 2
        return [Window(reads, 1 / f, Fraction(reads, 2) - 1 / (2 * f)) for f in self.factors(p, inputs[0])]

    def label(self, p: UpsampleParams, inputs: list[Shape]) -> str:
        mode = p.mode if p.mode != "linear" else _LINEAR_MODES.get(len(inputs[0]) - 1, "linear")
        return f"upsample_{mode}"
