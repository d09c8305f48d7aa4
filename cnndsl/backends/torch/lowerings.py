"""PyTorch lowering: one converter per op kind, from a checked layer to a torch.nn module.

A converter receives the op entry (for its geometry rules), the validated parameters, the per-sample
input shapes and the inferred output shape. Padding, groups and sizes are resolved by the same rules
the checker used (``sweep``, ``resolve_padding``), so the module cannot disagree with the report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from ...ops import REGISTRY
from ...ops.base import Op, Shape, batched_axis, per_axis
from ...ops.conv import Geometry
from .modules import (
    PADDED_CONV,
    PADDED_MAXPOOL,
    Add,
    Concat,
    Crop,
    LocallyConnected,
    PaddedAvgPool,
    Reshape,
    is_symmetric,
)

Converter = Callable[[Op, Any, list[Shape], Shape], nn.Module]
ByRank = dict[int, Callable[..., nn.Module]]  # torch.nn's classes by spatial rank

_CONV: ByRank = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_TRANSPOSE: ByRank = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_MAXPOOL: ByRank = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVGPOOL: ByRank = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_ADAPTIVE_AVG: ByRank = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_ADAPTIVE_MAX: ByRank = {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}
_BATCHNORM: ByRank = {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_LINEAR_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _rank(x: Shape) -> int:
    return len(x) - 1


def _freeze(module: nn.Module, p: Any) -> nn.Module:
    if getattr(p, "frozen", False):
        module.requires_grad_(False)
    return module


def _before(g: Geometry) -> tuple[int, ...]:
    return tuple(before for before, _ in g.padding)


def conv(op: Op, p: Any, inputs: list[Shape], out: Shape) -> nn.Module:
    x = inputs[0]
    g: Geometry = op.geometry(p, x)  # type: ignore[attr-defined]
    groups = x[0] if p.groups == "depthwise" else p.groups
    options: dict[str, Any] = {"stride": g.stride, "dilation": g.dilation, "groups": groups, "bias": p.bias}
    if is_symmetric(g.padding):
        return _freeze(_CONV[_rank(x)](x[0], p.channels, g.kernel, padding=_before(g), **options), p)
    return _freeze(PADDED_CONV[_rank(x)](g.padding, x[0], p.channels, g.kernel, padding=0, **options), p)


def conv_transpose(op: Op, p: Any, inputs: list[Shape], out: Shape) -> nn.Module:
    x = inputs[0]
    k, s, pad, opad, d = op._axes(p, x)  # type: ignore[attr-defined]
    module = _CONV_TRANSPOSE[_rank(x)](x[0], p.channels, k, stride=s, padding=pad, output_padding=opad,
                                       groups=p.groups, bias=p.bias, dilation=d)
    return _freeze(module, p)


def locally_connected(op: Op, p: Any, inputs: list[Shape], out: Shape) -> nn.Module:
    x = inputs[0]
    g: Geometry = op.geometry(p, x)  # type: ignore[attr-defined]
    module = LocallyConnected(x[0], p.channels, g.out, g.kernel, g.stride, g.padding, g.dilation, p.bias)
    return _freeze(module, p)


def maxpool(op: Op, p: Any, inputs: list[Shape], out: Shape) -> nn.Module:
    x = inputs[0]
    g: Geometry = op.geometry(p, x)  # type: ignore[attr-defined]
    args = (g.kernel, g.stride)
    if is_symmetric(g.padding):
        return _MAXPOOL[_rank(x)](*args, padding=_before(g), dilation=g.dilation, ceil_mode=p.ceil)
    return PADDED_MAXPOOL[_rank(x)](g.padding, *args, padding=0, dilation=g.dilation, ceil_mode=p.ceil)


def avgpool(op: Op, p: Any, inputs: list[Shape], out: Shape) -> nn.Module:
    x = inputs[0]
    g: Geometry = op.geometry(p, x)  # type: ignore[attr-defined]
    if is_symmetric(g.padding):
        return _AVGPOOL[_rank(x)](g.kernel, g.stride, _before(g), ceil_mode=p.ceil,
                                  count_include_pad=p.count_include_pad)
    return PaddedAvgPool(_rank(x), g.padding, g.kernel, g.stride, p.ceil, p.count_include_pad)


def _global(table: Mapping[int, Callable[..., nn.Module]]) -> Converter:
    return lambda op, p, inputs, out: table[_rank(inputs[0])](1)


def _adaptive(table: Mapping[int, Callable[..., nn.Module]]) -> Converter:
    def convert(op: Op, p: Any, inputs: list[Shape], out: Shape) -> nn.Module:
        return table[_rank(inputs[0])](out[1:])
    return convert


def upsample(op: Op, p: Any, inputs: list[Shape], out: Shape) -> nn.Module:
    rank = _rank(inputs[0])
    mode = "nearest" if p.mode == "nearest" else _LINEAR_MODE[rank]
    align = None if mode == "nearest" else p.align_corners
    if p.scale is not None:  # a factor keeps exported graphs size-generic, as the spec is
        scale = tuple(float(f) for f in per_axis(p.scale, rank, "scale", op.name))
        return nn.Upsample(scale_factor=scale, mode=mode, align_corners=align)
    return nn.Upsample(size=out[1:], mode=mode, align_corners=align)


def batchnorm(op: Op, p: Any, inputs: list[Shape], out: Shape) -> nn.Module:
    x = inputs[0]
    return _freeze(_BATCHNORM[_rank(x)](x[0], eps=p.eps, momentum=p.momentum, affine=p.affine), p)


def groupnorm(op: Op, p: Any, inputs: list[Shape], out: Shape) -> nn.Module:
    return _freeze(nn.GroupNorm(p.groups, inputs[0][0], eps=p.eps, affine=p.affine), p)


def layernorm(op: Op, p: Any, inputs: list[Shape], out: Shape) -> nn.Module:
    shape = op.normalized_shape(p, inputs[0])  # type: ignore[attr-defined]
    return _freeze(nn.LayerNorm(shape, eps=p.eps, elementwise_affine=p.affine), p)


def linear(op: Op, p: Any, inputs: list[Shape], out: Shape) -> nn.Module:
    return _freeze(nn.Linear(inputs[0][0], p.features, bias=p.bias), p)


def crop(op: Op, p: Any, inputs: list[Shape], out: Shape) -> nn.Module:
    return Crop(op.starts(p, inputs, out), out[1:])  # type: ignore[attr-defined]


def _simple(factory: Callable[[Any], nn.Module]) -> Converter:
    """A converter for ops whose module depends on their parameters only."""
    return lambda op, p, inputs, out: factory(p)


LOWERINGS: dict[str, Converter] = {
    "conv": conv,
    "conv_transpose": conv_transpose,
    "locally_connected": locally_connected,
    "maxpool": maxpool,
    "avgpool": avgpool,
    "global_avgpool": _global(_ADAPTIVE_AVG),
    "global_maxpool": _global(_ADAPTIVE_MAX),
    "adaptive_avgpool": _adaptive(_ADAPTIVE_AVG),
    "adaptive_maxpool": _adaptive(_ADAPTIVE_MAX),
    "upsample": upsample,
    "linear": linear,
    "flatten": _simple(lambda p: nn.Flatten()),
    "relu": _simple(lambda p: nn.ReLU()),
    "tanh": _simple(lambda p: nn.Tanh()),
    "sigmoid": _simple(lambda p: nn.Sigmoid()),
    "silu": _simple(lambda p: nn.SiLU()),
    "leaky_relu": _simple(lambda p: nn.LeakyReLU(p.slope)),
    "gelu": _simple(lambda p: nn.GELU(approximate="tanh" if p.approximate else "none")),
    "softmax": _simple(lambda p: nn.Softmax(dim=batched_axis(p.dim))),
    "dropout": _simple(lambda p: nn.Dropout(p.p)),
    "batchnorm": batchnorm,
    "groupnorm": groupnorm,
    "layernorm": layernorm,
    "identity": _simple(lambda p: nn.Identity()),
    "crop": crop,
    "reshape": lambda op, p, inputs, out: Reshape(out),
    "add": _simple(lambda p: Add()),
    "concat": _simple(lambda p: Concat(batched_axis(p.dim))),
}


def lower_layer(op_name: str, params: Any, inputs: list[Shape], out: Shape) -> nn.Module:
    op = REGISTRY[op_name]
    return LOWERINGS[op.kind](op, params, inputs, out)
