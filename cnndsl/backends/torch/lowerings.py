"""PyTorch lowering: one converter per op class, from a checked layer's resolved attributes to a
torch.nn module; ops without one that are element-wise formulas lower through compose.py.

A converter receives the layer's `Attrs` (ops/base.py): the validated arguments, the per-sample input
and output shapes, and what the op resolved from them (geometry with padding, groups, crop offsets).
They are the very values the checker reported, so the module cannot disagree with the report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from ...layout import batched_axis, channels, spatial
from ...ops import Attrs, Op, activation, merge, norm, pool, regions, resize, structure
from ...ops import conv as conv_ops
from ...ops import linear as linear_ops
from ...ops.base import TrainableParams, WindowAttrs
from ...ops.conv import ConvAttrs, ConvTransposeAttrs
from ...ops.norm import LayerNormAttrs
from ...ops.resize import UpsampleAttrs
from ...ops.structure import CropAttrs
from .. import Lowerings
from .compose import Composed
from .modules import (
    PADDED_CONV,
    PADDED_MAXPOOL,
    Add,
    ChannelLayerNorm,
    ChannelLinear,
    ChannelShuffle,
    Concat,
    Crop,
    DropPath,
    FrozenBatchNorm,
    LocallyConnected,
    Mul,
    PaddedAvgPool,
    Reshape,
    RoiAlign,
    Scale,
    Slice,
)

Converter = Callable[[Any], nn.Module]  # takes the op's Attrs (each converter names its own subclass)
ByRank = dict[int, Callable[..., nn.Module]]  # torch.nn's classes by spatial rank

_CONV: ByRank = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_TRANSPOSE: ByRank = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_MAXPOOL: ByRank = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVGPOOL: ByRank = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_ADAPTIVE_AVG: ByRank = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_ADAPTIVE_MAX: ByRank = {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}
_INSTANCENORM: ByRank = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_BATCHNORM: ByRank = {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def _freeze(module: nn.Module, p: TrainableParams) -> nn.Module:
    if p.frozen:
        module.requires_grad_(False)
    return module


def conv(a: ConvAttrs) -> nn.Module:
    g, p = a.geometry, a.p
    options: dict[str, Any] = {"stride": g.stride, "dilation": g.dilation, "groups": a.groups, "bias": p.bias}
    if g.symmetric:
        return _freeze(_CONV[a.rank](channels(a.x), p.channels, g.kernel, padding=g.padding_before, **options), p)
    return _freeze(PADDED_CONV[a.rank](g.padding, channels(a.x), p.channels, g.kernel, padding=0, **options), p)


def conv_transpose(a: ConvTransposeAttrs) -> nn.Module:
    module = _CONV_TRANSPOSE[a.rank](channels(a.x), a.p.channels, a.kernel, stride=a.stride, padding=a.padding,
                                     output_padding=a.output_padding, groups=a.p.groups, bias=a.p.bias,
                                     dilation=a.dilation)
    return _freeze(module, a.p)


def locally_connected(a: WindowAttrs[Any]) -> nn.Module:
    g = a.geometry
    module = LocallyConnected(channels(a.x), a.p.channels, g.out, g.kernel, g.stride, g.padding, g.dilation, a.p.bias)
    return _freeze(module, a.p)


def maxpool(a: WindowAttrs[Any]) -> nn.Module:
    g = a.geometry
    args = (g.kernel, g.stride)
    if g.symmetric:
        return _MAXPOOL[a.rank](*args, padding=g.padding_before, dilation=g.dilation, ceil_mode=g.ceil)
    return PADDED_MAXPOOL[a.rank](g.padding, *args, padding=0, dilation=g.dilation, ceil_mode=g.ceil)


def avgpool(a: WindowAttrs[Any]) -> nn.Module:
    g = a.geometry
    if g.symmetric:
        return _AVGPOOL[a.rank](g.kernel, g.stride, g.padding_before, ceil_mode=g.ceil,
                                count_include_pad=a.p.count_include_pad)
    return PaddedAvgPool(a.rank, g.padding, g.kernel, g.stride, g.ceil, a.p.count_include_pad)


def _global(table: Mapping[int, Callable[..., nn.Module]]) -> Converter:
    return lambda a: table[a.rank](1)


def _adaptive(table: Mapping[int, Callable[..., nn.Module]]) -> Converter:
    return lambda a: table[a.rank](spatial(a.out))


def upsample(a: UpsampleAttrs) -> nn.Module:
    align = None if a.mode == "nearest" else a.p.align_corners
    if a.p.scale is not None:  # a factor keeps exported graphs size-generic, as the spec is
        return nn.Upsample(scale_factor=tuple(float(f) for f in a.factors), mode=a.mode, align_corners=align)
    return nn.Upsample(size=spatial(a.out), mode=a.mode, align_corners=align)


def batchnorm(a: Attrs[Any]) -> nn.Module:
    return _freeze(_BATCHNORM[a.rank](channels(a.x), eps=a.p.eps, momentum=a.p.momentum, affine=a.p.affine), a.p)


def groupnorm(a: Attrs[Any]) -> nn.Module:
    return _freeze(nn.GroupNorm(a.p.groups, channels(a.x), eps=a.p.eps, affine=a.p.affine), a.p)


def layernorm(a: LayerNormAttrs) -> nn.Module:
    layer = ChannelLayerNorm if a.over_channels else nn.LayerNorm
    return _freeze(layer(a.normalized_shape, eps=a.p.eps, elementwise_affine=a.p.affine), a.p)


def instancenorm(a: Attrs[Any]) -> nn.Module:
    return _freeze(_INSTANCENORM[a.rank](channels(a.x), eps=a.p.eps, affine=a.p.affine), a.p)


def linear(a: Attrs[Any]) -> nn.Module:
    layer = ChannelLinear if a.p.over == "channels" else nn.Linear
    return _freeze(layer(a.x[0], a.p.features, bias=a.p.bias), a.p)


def crop(a: CropAttrs) -> nn.Module:
    return Crop(a.starts, spatial(a.out))


def _unit_axes(a: Attrs[Any]) -> tuple[int, ...]:
    """Per input, the unit axes to insert after the batch so that numpy's broadcasting of the per-sample
    shapes holds for the batched tensors."""
    return tuple(len(a.out) - len(x) for x in a.inputs)


def _simple(factory: Callable[[Any], nn.Module]) -> Converter:
    """A converter for ops whose module depends on their arguments only."""
    return lambda a: factory(a.p)


LOWERINGS: Lowerings[Converter] = Lowerings({
    conv_ops.Conv: conv,
    conv_ops.ConvTranspose: conv_transpose,
    conv_ops.LocallyConnected: locally_connected,
    pool.MaxPool: maxpool,
    pool.AvgPool: avgpool,
    pool.GlobalAvgPool: _global(_ADAPTIVE_AVG),
    pool.GlobalMaxPool: _global(_ADAPTIVE_MAX),
    pool.AdaptiveAvgPool: _adaptive(_ADAPTIVE_AVG),
    pool.AdaptiveMaxPool: _adaptive(_ADAPTIVE_MAX),
    resize.Upsample: upsample,
    resize.PixelShuffle: _simple(lambda p: nn.PixelShuffle(p.factor)),
    resize.PixelUnshuffle: _simple(lambda p: nn.PixelUnshuffle(p.factor)),
    linear_ops.Linear: linear,
    structure.Flatten: _simple(lambda p: nn.Flatten()),
    # torch.nn's own activations where it has them (they print, export and run in place as users expect);
    # other element-wise formulas lower through torch's functions (compose.py)
    activation.Relu: _simple(lambda p: nn.ReLU()),
    activation.Tanh: _simple(lambda p: nn.Tanh()),
    activation.Sigmoid: _simple(lambda p: nn.Sigmoid()),
    activation.Silu: _simple(lambda p: nn.SiLU()),
    activation.Relu6: _simple(lambda p: nn.ReLU6()),
    activation.Hardsigmoid: _simple(lambda p: nn.Hardsigmoid()),
    activation.Hardswish: _simple(lambda p: nn.Hardswish()),
    activation.Mish: _simple(lambda p: nn.Mish()),
    activation.Elu: _simple(lambda p: nn.ELU(p.alpha)),
    activation.Prelu: lambda a: _freeze(nn.PReLU(channels(a.x) if a.p.per_channel else 1, init=a.p.init), a.p),
    activation.LeakyRelu: _simple(lambda p: nn.LeakyReLU(p.slope)),
    activation.Gelu: _simple(lambda p: nn.GELU(approximate="tanh" if p.approximate else "none")),
    activation.Softmax: _simple(lambda p: nn.Softmax(dim=batched_axis(p.dim))),
    activation.Dropout: _simple(lambda p: nn.Dropout(p.p)),
    activation.DropPath: _simple(lambda p: DropPath(p.p)),
    norm.BatchNorm: batchnorm,
    norm.FrozenBatchNorm: lambda a: FrozenBatchNorm(channels(a.x), a.p.eps, a.rank),
    regions.RoiAlign: lambda a: RoiAlign(a.size, a.p.spatial_scale, a.p.sampling_ratio, a.p.aligned),
    norm.GroupNorm: groupnorm,
    norm.LayerNorm: layernorm,
    norm.InstanceNorm: instancenorm,
    norm.LocalResponseNorm: _simple(lambda p: nn.LocalResponseNorm(p.size, p.alpha, p.beta, p.k)),
    linear_ops.Scale: lambda a: _freeze(Scale(channels(a.x), a.p.init, a.rank), a.p),
    structure.Identity: _simple(lambda p: nn.Identity()),
    structure.Crop: crop,
    structure.Reshape: lambda a: Reshape(a.out),
    structure.Slice: lambda a: Slice(batched_axis(a.axis), a.start, a.stop),
    structure.ChannelShuffle: _simple(lambda p: ChannelShuffle(p.groups)),
    merge.Add: lambda a: Add(_unit_axes(a)),
    merge.Mul: lambda a: Mul(_unit_axes(a)),
    merge.Concat: _simple(lambda p: Concat(batched_axis(p.dim))),
})


def lower_layer(op: Op, attrs: Attrs[Any]) -> nn.Module:
    """The layer's module: its op's hand-written lowering, else its formula (`unsupported_ops` ran first)."""
    convert = LOWERINGS.find(op)
    return Composed(op, attrs) if convert is None else convert(attrs)
