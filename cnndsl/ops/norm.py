"""Normalisation layers. Receptive fields ignore normalisation statistics (the usual convention)."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Annotated, Literal

from pydantic import Field

from ..diagnostics import Code
from ..layout import fmt_shape
from .base import (
    DESCRIBE_BOOL,
    DESCRIBE_POSITIVE,
    Attrs,
    Op,
    OpParams,
    PositiveInt,
    Shape,
    ShapeError,
    Tensor,
    TrainableParams,
    learned,
)
from .registry import register

Eps = Annotated[float, Field(gt=0.0)]


class BatchNormParams(TrainableParams):
    eps: Eps = 1e-5
    momentum: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    affine: bool = True


class FrozenBatchNormParams(OpParams):
    eps: Eps = 1e-5


class GroupNormParams(TrainableParams):
    groups: PositiveInt
    eps: Eps = 1e-5
    affine: bool = True


class LayerNormParams(TrainableParams):
    dims: PositiveInt | None = None  # normalise over the last `dims` per-sample axes; None: all of them
    over: Literal["trailing", "channels"] = "trailing"  # channels: each position's channels (ConvNeXt)
    eps: Eps = 1e-5
    affine: bool = True


class InstanceNormParams(TrainableParams):
    eps: Eps = 1e-5
    affine: bool = False  # PyTorch's InstanceNorm default


class LrnParams(OpParams):
    size: PositiveInt
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


def _affine(affine: bool, shape: Shape) -> dict[str, Tensor]:
    """A normalisation's learned scale (`weight`) and shift (`bias`), PyTorch's names, when `affine`."""
    return learned(weight=shape, bias=shape) if affine else {}


def _ranked_input(op: Op, x: Shape) -> Shape:
    """The input's shape, checked against the rank an alias fixes (batchnorm2d); any rank otherwise."""
    if op.rank is not None:
        op.spatial_rank(x)
    return x


_DESCRIPTIONS = {"eps": "a positive number", "momentum": "a number in [0, 1]", "affine": DESCRIBE_BOOL,
                 "frozen": DESCRIBE_BOOL, "groups": DESCRIBE_POSITIVE,
                 "dims": "a positive number of trailing per-sample axes",
                 "over": "`trailing` (the last `dims` axes) or `channels` (each position's channels)",
                 "size": "a positive number of neighbouring channels", "alpha": "a number", "beta": "a number",
                 "k": "a number"}


@register("batchnorm1d", "batchnorm2d", "batchnorm3d")
class BatchNorm(Op):
    kind = "batchnorm"
    Params = BatchNormParams
    family = "normalization"
    ranked_label = True
    summary = "Batch normalisation over channels: 2C parameters (scale, shift), 2C running statistics."
    descriptions = _DESCRIPTIONS

    overwritable_output = True

    def output_shape(self, p: BatchNormParams, inputs: tuple[Shape, ...]) -> Shape:
        return _ranked_input(self, inputs[0])

    def tensors(self, a: Attrs[BatchNormParams]) -> dict[str, Tensor]:
        c = (a.x[0],)
        statistics = {"running_mean": Tensor(c, learned=False), "running_var": Tensor(c, learned=False)}
        return {**_affine(a.p.affine, c), **statistics}


@register("frozen_batchnorm2d")
class FrozenBatchNorm(Op):
    """torchvision.ops.FrozenBatchNorm2d, which torchvision's detection backbones use: batch norm whose
    scale, shift and statistics are all buffers, never trained. They count as no parameter, which is why
    torchvision's Faster R-CNN counts fewer parameters than its ResNet-50 with batch norm."""

    kind = "frozen_batchnorm"
    Params = FrozenBatchNormParams
    family = "normalization"
    ranked_label = True
    summary = ("Batch normalisation with fixed statistics, scale and shift (torchvision's FrozenBatchNorm2d): 4C "
               "buffers, no parameters.")
    descriptions = _DESCRIPTIONS

    overwritable_output = True

    def output_shape(self, p: FrozenBatchNormParams, inputs: tuple[Shape, ...]) -> Shape:
        return _ranked_input(self, inputs[0])

    def tensors(self, a: Attrs[FrozenBatchNormParams]) -> dict[str, Tensor]:
        c = (a.x[0],)
        return {name: Tensor(c, learned=False) for name in ("weight", "bias", "running_mean", "running_var")}


@register()
class GroupNorm(Op):
    kind = "groupnorm"
    Params = GroupNormParams
    positional = ("groups",)
    family = "normalization"
    summary = "Group normalisation: channels split into `groups`; 2C parameters when affine."
    descriptions = _DESCRIPTIONS

    overwritable_output = True

    def output_shape(self, p: GroupNormParams, inputs: tuple[Shape, ...]) -> Shape:
        x = inputs[0]
        if x[0] % p.groups:
            raise ShapeError(Code.E305, f"groupnorm groups={p.groups} must divide the {x[0]} input channels",
                             hint="choose a divisor of the channel count")
        if x[0] // p.groups * prod(x[1:]) == 1:
            # each group is one value: its normalised value is always 0 (the output is the shift), and
            # PyTorch refuses to run it ("Expected more than 1 value per channel")
            raise ShapeError(Code.E306, f"groupnorm({p.groups}) on {fmt_shape(x)} normalises groups of a single value",
                             hint="use fewer groups, or normalise before the spatial size shrinks to 1")
        return x

    def tensors(self, a: Attrs[GroupNormParams]) -> dict[str, Tensor]:
        return _affine(a.p.affine, (a.x[0],))


@dataclass(frozen=True)
class LayerNormAttrs(Attrs[LayerNormParams]):
    normalized_shape: Shape  # the per-sample axes normalised over (PyTorch's normalized_shape)

    @property
    def over_channels(self) -> bool:
        """Normalised over each position's channels (torchvision's LayerNorm2d), not the trailing axes."""
        return self.p.over == "channels"


@register()
class LayerNorm(Op):
    kind = "layernorm"
    Params = LayerNormParams
    family = "normalization"
    summary = ("Layer normalisation over the last `dims` per-sample axes (default: all of them), or with "
               "`over=channels` over each position's channels (ConvNeXt's LayerNorm2d); 2 x their size parameters "
               "when affine.")
    descriptions = _DESCRIPTIONS

    overwritable_output = True

    def resolve(self, p: LayerNormParams, inputs: tuple[Shape, ...]) -> LayerNormAttrs:
        x = inputs[0]
        if p.over == "channels":
            if p.dims is not None:
                raise ShapeError(Code.E205, "layernorm takes `dims` (trailing axes) or `over=channels`, not both")
            return LayerNormAttrs(p, inputs, x, x[:1])
        dims = len(x) if p.dims is None else p.dims
        if dims > len(x):
            raise ShapeError(Code.E205, f"layernorm dims={dims} exceeds the {len(x)} per-sample axes of {fmt_shape(x)}")
        return LayerNormAttrs(p, inputs, x, x[len(x) - dims:])

    def tensors(self, a: LayerNormAttrs) -> dict[str, Tensor]:
        return _affine(a.p.affine, a.normalized_shape)


@register("instancenorm1d", "instancenorm2d", "instancenorm3d")
class InstanceNorm(Op):
    kind = "instancenorm"
    Params = InstanceNormParams
    family = "normalization"
    ranked_label = True
    summary = ("Instance normalisation: each sample's channels normalised over their positions (style transfer, "
               "GANs); no running statistics; 2C parameters with `affine=true`.")
    descriptions = _DESCRIPTIONS
    overwritable_output = True

    def output_shape(self, p: InstanceNormParams, inputs: tuple[Shape, ...]) -> Shape:
        x = inputs[0]
        self.spatial_rank(x)
        if prod(x[1:]) == 1:
            raise ShapeError(Code.E306, f"instancenorm on {fmt_shape(x)} normalises a single value per channel",
                             hint="normalise before the spatial size shrinks to 1")
        return x

    def tensors(self, a: Attrs[InstanceNormParams]) -> dict[str, Tensor]:
        return _affine(a.p.affine, (a.x[0],))


@register()
class LocalResponseNorm(Op):
    kind = "lrn"
    kept_extra = 3.5
    Params = LrnParams
    positional = ("size",)
    family = "normalization"
    summary = ("Local response normalisation across `size` neighbouring channels (AlexNet, GoogLeNet): "
               "x / (k + alpha/size * sum of squares)^beta, as PyTorch's LocalResponseNorm.")
    descriptions = _DESCRIPTIONS
    overwritable_output = True

    def output_shape(self, p: LrnParams, inputs: tuple[Shape, ...]) -> Shape:
        self.spatial_rank(inputs[0])  # PyTorch's needs N x C x positions
        return inputs[0]
