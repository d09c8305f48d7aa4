"""What the analysis passes know about each node: a typed record, not a dictionary of strings.

The shape pass resolves each node's op into its `Attrs` (output shape included) and starts its
`NodeFacts`; the parameter, MAC and receptive-field passes fill in the rest. A node that could not be
checked has no facts but an `Unchecked` reason: its own rule rejected it (and said why), or an input
was unchecked already (nothing more is said about it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from math import ceil, prod

from ..ops.base import NO_MACS, NO_PARAMS, Attrs, Macs, Number, ParamCount, Shape, Window


class Unchecked(Enum):
    REJECTED = "its shape rule rejected its inputs (reported)"
    UPSTREAM = "an input could not be checked"


@dataclass(frozen=True)
class AxisField:
    """The receptive field of a tensor along one spatial axis (Araujo, Norris and Sim, Distill 2019):
    output position i sees the input positions [-padding + i*stride, -padding + i*stride + size)."""

    size: Number  # exact extent, in input pixels
    stride: Number
    padding: Number

    @property
    def pixels(self) -> int:
        return ceil(self.size)

    @property
    def centre_offset(self) -> Number:
        return exact((Fraction(self.size) - 1) / 2 - self.padding)

    def through(self, w: Window) -> AxisField:
        return AxisField(exact(self.size + (w.kernel - 1) * self.stride), exact(self.stride * w.stride),
                         exact(self.padding + w.padding * self.stride))


Field = tuple[AxisField, ...]
INPUT_AXIS = AxisField(1, 1, 0)


def exact(x: Number) -> Number:
    """Fractions with denominator 1 become ints, so integer-only networks stay in fast int arithmetic."""
    if isinstance(x, Fraction) and x.denominator == 1:
        return x.numerator
    return x


@dataclass
class NodeFacts:
    """One checked node: its resolved attributes (inputs, output shape, derived geometry) and what the
    passes computed from them. Inputs of the network have `Attrs` with no inputs and their shape."""

    attrs: Attrs
    label: str  # as reports show the op: "conv2d", "upsample_bilinear", "input"
    params: ParamCount = NO_PARAMS  # set by the parameter pass
    trainable: int = 0  # learnable parameters not marked `frozen`
    macs: Macs = NO_MACS  # set by the MAC pass
    field: Field | None = None  # receptive field, set by its pass; None: no spatial correspondence

    @property
    def shape(self) -> Shape:
        return self.attrs.out

    @property
    def elements(self) -> int:
        """Output elements per sample (what the activation memory counts)."""
        return prod(self.attrs.out)
