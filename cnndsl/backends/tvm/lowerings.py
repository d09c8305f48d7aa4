"""TVM Relax lowering: one converter per op class (element-wise formulas without one lower through
`RelaxPrimitives`), from a checked layer's resolved attributes (`Attrs`,
ops/base.py: the same geometry the checker and the PyTorch backend use) to relax.op calls emitted
through a BlockBuilder.

Weights arrive as the PyTorch backend's state_dict (so both backends compute with the same numbers) and
become parameters of the Relax function. Where inference allows a cheaper equivalent, the converter
derives it once at compile time: batch norm becomes a per-channel scale and shift, a linear layer's
weight is stored transposed for a plain matmul.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import tvm.tirx
from tvm import relax
from tvm.relax import op as R

from ...layout import (
    BATCHED_CHANNEL_AXIS,
    batched,
    batched_axis,
    batched_spatial_axes,
    channels,
    per_channel_shape,
    spatial,
)
from ...ops import Attrs, Op, activation, merge, norm, pool, regions, resize, structure
from ...ops import conv as conv_ops
from ...ops import linear as linear_ops
from ...ops.base import WindowAttrs
from ...ops.conv import ConvAttrs, ConvTransposeAttrs
from ...ops.norm import LayerNormAttrs
from ...ops.structure import CropAttrs
from .. import Lowerings

DTYPE = "float32"


@dataclass
class Emitter:
    """What converters share: the BlockBuilder, the state_dict, and the parameters created so far."""

    builder: relax.BlockBuilder
    state: Mapping[str, np.ndarray]
    batch: int | tvm.tirx.Var  # a variable for a dynamic batch
    params: list[relax.Var] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)

    def emit(self, expr: relax.Expr) -> relax.Var:
        return self.builder.emit(expr)

    def param(self, name: str, value: np.ndarray) -> relax.Var:
        value = np.ascontiguousarray(value, dtype=np.float32)
        var = relax.Var(name, relax.TensorType(value.shape, DTYPE))
        self.params.append(var)
        self.names.append(name)
        self.values.append(value)
        return var

    def weight(self, layer: Layer, name: str) -> np.ndarray:
        """The layer's tensor `name` as its op declares it (`Op.tensors`: names and shapes both backends share),
        from the state_dict under the layer's name."""
        declared = layer.op.tensors(layer.a)
        if name not in declared:
            raise LookupError(f"`{layer.op.kind}` declares no tensor `{name}` "
                              f"(it holds {', '.join(declared) or 'none'})")
        value = self.state[f"{layer.name}.{name}"]
        if tuple(value.shape) != declared[name].shape:
            raise ValueError(f"`{layer.name}.{name}` is {tuple(value.shape)}; its op declares {declared[name].shape}")
        return value


@dataclass(frozen=True)
class Layer:
    """One node as its converter sees it: its name (for its weights) and its resolved attributes."""

    name: str
    a: Any  # the op's Attrs subclass; each converter names the one it reads
    op: Op

    @property
    def p(self) -> Any:
        return self.a.p

    @property
    def rank(self) -> int:
        return int(self.a.rank)


Converter = Callable[[Emitter, Layer, list[relax.Expr]], relax.Expr]

Operand: TypeAlias = "relax.Expr | float"


class RelaxPrimitives:
    """`Primitives` (ops/compose.py) as Relax ops emitted through the converters' Emitter; float operands
    become float32 constants."""

    def __init__(self, e: Emitter):
        self.e = e

    def _binary(self, combine: Callable[[relax.Expr, relax.Expr], relax.Expr], x: Operand, y: Operand) -> relax.Expr:
        return self.e.emit(combine(_tensor(x), _tensor(y)))

    def add(self, x: Operand, y: Operand) -> relax.Expr:
        return self._binary(R.add, x, y)

    def subtract(self, x: Operand, y: Operand) -> relax.Expr:
        return self._binary(R.subtract, x, y)

    def multiply(self, x: Operand, y: Operand) -> relax.Expr:
        return self._binary(R.multiply, x, y)

    def divide(self, x: Operand, y: Operand) -> relax.Expr:
        return self._binary(R.divide, x, y)

    def maximum(self, x: relax.Expr, y: Operand) -> relax.Expr:
        return self._binary(R.maximum, x, y)

    def minimum(self, x: relax.Expr, y: Operand) -> relax.Expr:
        return self._binary(R.minimum, x, y)

    def clip(self, x: relax.Expr, low: float, high: float) -> relax.Expr:
        return self.e.emit(R.clip(x, low, high))

    def exp(self, x: relax.Expr) -> relax.Expr:
        return self.e.emit(R.exp(x))

    def tanh(self, x: relax.Expr) -> relax.Expr:
        return self.e.emit(R.tanh(x))

    def sigmoid(self, x: relax.Expr) -> relax.Expr:
        return self.e.emit(R.sigmoid(x))

    def relu(self, x: relax.Expr) -> relax.Expr:
        return self.e.emit(R.nn.relu(x))

    def softplus(self, x: relax.Expr, beta: float, threshold: float) -> relax.Expr:
        return self.e.emit(R.nn.softplus(x, beta=beta, threshold=threshold))


def _tensor(x: Operand) -> relax.Expr:
    return relax.const(x, DTYPE) if isinstance(x, float) else x


def _pad_list(pads: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    """Relax's padding order: all 'before' values, then all 'after' values."""
    return tuple(b for b, _ in pads) + tuple(a for _, a in pads)


def _add_bias(e: Emitter, layer: Layer, y: relax.Expr, rank: int) -> relax.Expr:
    """Add the layer's bias (C_out values, or C_out x output positions for a locally connected layer)."""
    if not layer.p.bias:
        return y
    bias = e.weight(layer, "bias")
    shape = (1, *bias.shape, *(1,) * (rank + 1 - bias.ndim))
    return e.emit(R.add(y, e.param(f"{layer.name}.bias", bias.reshape(shape))))


_CONV = {1: R.nn.conv1d, 2: R.nn.conv2d, 3: R.nn.conv3d}
_CONV_TRANSPOSE = {1: R.nn.conv1d_transpose, 2: R.nn.conv2d_transpose, 3: R.nn.conv3d_transpose}
_MAXPOOL = {1: R.nn.max_pool1d, 2: R.nn.max_pool2d, 3: R.nn.max_pool3d}
_AVGPOOL = {1: R.nn.avg_pool1d, 2: R.nn.avg_pool2d, 3: R.nn.avg_pool3d}
_ADAPTIVE_AVG = {1: R.nn.adaptive_avg_pool1d, 2: R.nn.adaptive_avg_pool2d, 3: R.nn.adaptive_avg_pool3d}
_LAYOUT = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
_KERNEL_LAYOUT = {1: "OIW", 2: "OIHW", 3: "OIDHW"}


def conv(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    a: ConvAttrs = layer.a
    g, rank = a.geometry, layer.rank
    w = e.param(f"{layer.name}.weight", e.weight(layer, "weight"))
    y = e.emit(_CONV[rank](args[0], w, strides=g.stride, padding=_pad_list(g.padding), dilation=g.dilation,
                           groups=a.groups, data_layout=_LAYOUT[rank], kernel_layout=_KERNEL_LAYOUT[rank]))
    return _add_bias(e, layer, y, rank)


def conv_transpose(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    a: ConvTransposeAttrs = layer.a
    rank = layer.rank
    w = e.param(f"{layer.name}.weight", e.weight(layer, "weight"))
    y = e.emit(_CONV_TRANSPOSE[rank](args[0], w, strides=a.stride, padding=a.padding * 2,
                                     output_padding=a.output_padding, dilation=a.dilation, groups=a.p.groups,
                                     data_layout=_LAYOUT[rank],
                                     kernel_layout="IO" + _KERNEL_LAYOUT[rank][2:]))
    return _add_bias(e, layer, y, rank)


def locally_connected(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    """Gather each kernel offset's strided slice, stack them as features, and contract with the
    position-wise weights: y[n, o, *j] = sum_f x_windows[n, *j, f] * w[o, *j, f]."""
    a: WindowAttrs[Any] = layer.a
    x, rank, g = a.x, layer.rank, a.geometry
    padded = e.emit(R.nn.pad(args[0], (0, 0, 0, 0, *(v for pair in g.padding for v in pair))))
    slices = []
    for offset in np.ndindex(*g.kernel):
        begin = [o * d for o, d in zip(offset, g.dilation, strict=True)]
        end = [b + (n - 1) * s + 1 for b, n, s in zip(begin, g.out, g.stride, strict=True)]
        axes = batched_spatial_axes(rank)
        slices.append(e.emit(R.strided_slice(padded, axes, begin, end, list(g.stride))))
    # (N, C, K, *out): features ordered channel-major, kernel offsets minor, as the weight's last axis
    # concat of expand_dims, not R.stack: TVM 0.27's ConvertLayout (tuned CPU builds) crashes on stack
    stacked = e.emit(R.concat([e.emit(R.expand_dims(piece, 2)) for piece in slices], axis=2))
    features = e.emit(R.reshape(stacked, (e.batch, channels(x) * len(slices), *g.out)))
    w = e.param(f"{layer.name}.weight", e.weight(layer, "weight"))
    y = e.emit(R.einsum([features, w], "nf" + _AXES[:rank] + ",o" + _AXES[:rank] + "f->no" + _AXES[:rank]))
    return _add_bias(e, layer, y, rank)


_AXES = "hwd"


def maxpool(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    g = layer.a.geometry
    return e.emit(_MAXPOOL[layer.rank](args[0], g.kernel, g.stride, _pad_list(g.padding), g.dilation,
                                       ceil_mode=g.ceil, layout=_LAYOUT[layer.rank]))


def avgpool(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    g = layer.a.geometry
    return e.emit(_AVGPOOL[layer.rank](args[0], g.kernel, g.stride, _pad_list(g.padding), (1,) * layer.rank,
                                       ceil_mode=g.ceil, count_include_pad=layer.p.count_include_pad,
                                       layout=_LAYOUT[layer.rank]))


def global_avgpool(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    return e.emit(R.mean(args[0], axis=batched_spatial_axes(layer.rank), keepdims=True))


def global_maxpool(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    return e.emit(R.max(args[0], axis=batched_spatial_axes(layer.rank), keepdims=True))


def adaptive_avgpool(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    return e.emit(_ADAPTIVE_AVG[layer.rank](args[0], spatial(layer.a.out), layout=_LAYOUT[layer.rank]))


def adaptive_maxpool(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    """Relax has no adaptive max pooling: take PyTorch's windows one output cell at a time (they are
    static) and concatenate, axis by axis."""
    from ...ops.formulas import adaptive_windows

    x = args[0]
    for axis, n, m in zip(batched_spatial_axes(layer.rank), spatial(layer.a.x), spatial(layer.a.out), strict=True):
        if n == m:
            continue
        cells = [e.emit(R.max(e.emit(R.strided_slice(x, [axis], [start], [end])), axis=[axis], keepdims=True))
                 for start, end in adaptive_windows(n, m)]
        x = e.emit(R.concat(cells, axis=axis)) if len(cells) > 1 else cells[0]
    return x


def upsample(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    """image.resize with PyTorch's coordinate rules: nearest reads floor(j * n / m) ("asymmetric",
    floor); linear uses half-pixel centres, or the corners with align_corners."""
    rank, size = layer.rank, spatial(layer.a.out)
    if layer.p.mode == "nearest":
        options = {"method": "nearest_neighbor", "coordinate_transformation_mode": "asymmetric",
                   "rounding_method": "floor"}
    else:
        mode = "align_corners" if layer.p.align_corners else "half_pixel"
        options = {"method": "linear", "coordinate_transformation_mode": mode}
    x = args[0]
    if rank == 3:
        return e.emit(R.image.resize3d(x, size, layout="NCDHW", **options))
    if rank == 2:
        return e.emit(R.image.resize2d(x, size, layout="NCHW", **options))
    # no 1-D resize in Relax: a height-1 image, resized in width only
    count, length = layer.a.x
    image = e.emit(R.reshape(x, (e.batch, count, 1, length)))
    resized = e.emit(R.image.resize2d(image, (1, size[0]), layout="NCHW", **options))
    return e.emit(R.reshape(resized, (e.batch, count, size[0])))


def _regroup(e: Emitter, x: relax.Expr, split: tuple[int, ...], order: list[int], out: tuple[int, ...]) -> relax.Expr:
    return e.emit(R.reshape(e.emit(R.permute_dims(e.emit(R.reshape(x, split)), order)), out))


def pixel_shuffle(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    """N x Cr^2 x H x W -> N x C x r x r x H x W -> N x C x H x r x W x r -> N x C x Hr x Wr: channel
    c*r^2 + i*r + j goes to position (h*r + i, w*r + j), as PyTorch's. (R.nn.pixel_shuffle exists, but TVM 0.27
    cannot legalize it: topi.nn.pixel_shuffle is missing.)"""
    r, (count, height, width) = layer.p.factor, layer.a.x
    split = (e.batch, count // (r * r), r, r, height, width)
    return _regroup(e, args[0], split, [0, 1, 4, 2, 5, 3], batched(layer.a.out, e.batch))


def pixel_unshuffle(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    """The inverse: N x C x Hr x Wr -> N x C x H x r x W x r -> N x C x r x r x H x W -> N x Cr^2 x H x W."""
    r, (count, height, width) = layer.p.factor, layer.a.out
    split = (e.batch, count // (r * r), height, r, width, r)
    return _regroup(e, args[0], split, [0, 1, 3, 5, 2, 4], batched(layer.a.out, e.batch))


def batchnorm(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    """Inference batch norm as y = x * scale + shift, with scale and shift derived from the statistics."""
    mean = e.weight(layer, "running_mean")
    gamma = e.weight(layer, "weight") if layer.p.affine else np.ones_like(mean)
    beta = e.weight(layer, "bias") if layer.p.affine else np.zeros_like(mean)
    return _scale_and_shift(e, layer, args[0], gamma, beta)


def frozen_batchnorm(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    """torchvision's FrozenBatchNorm2d: inference batch norm whose scale and shift are buffers too."""
    return _scale_and_shift(e, layer, args[0], e.weight(layer, "weight"), e.weight(layer, "bias"))


def roi_align(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    """TVM's vision.roi_align reads all boxes as one R x 5 list (batch index, x1, y1, x2, y2), as torchvision's
    does: each sample's K boxes get its index; the R results are regrouped per sample."""
    x, boxes = args
    count, pooled = layer.a.inputs[1][0], layer.a.size
    index = e.emit(R.arange(0, e.batch, 1, dtype=DTYPE))
    index = e.emit(R.reshape(R.broadcast_to(R.reshape(index, (e.batch, 1)), (e.batch, count)), (e.batch * count, 1)))
    rois = e.emit(R.concat([index, R.reshape(boxes, (e.batch * count, 4))], axis=1))
    p = layer.p
    result = e.emit(R.vision.roi_align(x, rois, pooled, p.spatial_scale, p.sampling_ratio, p.aligned, "NCHW", "avg"))
    return e.emit(R.reshape(result, batched(layer.a.out, e.batch)))


def _scale_and_shift(e: Emitter, layer: Layer, x: relax.Expr, gamma: np.ndarray, beta: np.ndarray) -> relax.Expr:
    mean, var = e.weight(layer, "running_mean"), e.weight(layer, "running_var")
    scale = gamma / np.sqrt(var.astype(np.float64) + layer.p.eps)
    shift = beta - mean * scale
    shape = per_channel_shape(len(mean), layer.rank)
    scaled = e.emit(R.multiply(x, e.param(f"{layer.name}.scale", scale.reshape(shape))))
    return e.emit(R.add(scaled, e.param(f"{layer.name}.shift", shift.reshape(shape))))


def _affine(e: Emitter, layer: Layer, shape: tuple[int, ...]) -> tuple[relax.Expr, relax.Expr]:
    if layer.p.affine:
        return (e.param(f"{layer.name}.weight", e.weight(layer, "weight")),
                e.param(f"{layer.name}.bias", e.weight(layer, "bias")))
    return (relax.const(np.ones(shape, np.float32)), relax.const(np.zeros(shape, np.float32)))


def _group_norm(e: Emitter, layer: Layer, args: list[relax.Expr], groups: int) -> relax.Expr:
    gamma, beta = _affine(e, layer, (channels(layer.a.x),))
    return e.emit(R.nn.group_norm(args[0], gamma, beta, num_groups=groups, channel_axis=BATCHED_CHANNEL_AXIS,
                                  axes=batched_spatial_axes(layer.rank), epsilon=layer.p.eps))


def groupnorm(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    return _group_norm(e, layer, args, layer.p.groups)


def layernorm(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    a: LayerNormAttrs = layer.a
    shape = a.normalized_shape
    gamma, beta = _affine(e, layer, shape)
    if a.over_channels:
        return e.emit(R.nn.layer_norm(args[0], gamma, beta, axes=[BATCHED_CHANNEL_AXIS], epsilon=layer.p.eps))
    total = len(a.x) + 1  # batched
    return e.emit(R.nn.layer_norm(args[0], gamma, beta, axes=list(range(total - len(shape), total)),
                                  epsilon=layer.p.eps))


def instancenorm(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    """Group norm with one channel per group."""
    return _group_norm(e, layer, args, channels(layer.a.x))


def lrn(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    """PyTorch's LocalResponseNorm: x / (k + alpha * mean of x^2 over `size` channels, zero-padded with
    size // 2 before and (size - 1) // 2 after)^beta; the window sum as `size` shifted channel slices."""
    size, count, p = layer.p.size, channels(layer.a.x), layer.p
    squared = e.emit(R.multiply(args[0], args[0]))
    pads = [0, 0] * (len(layer.a.x) + 1)
    pads[2 * BATCHED_CHANNEL_AXIS:2 * BATCHED_CHANNEL_AXIS + 2] = [size // 2, (size - 1) // 2]
    padded = e.emit(R.nn.pad(squared, pads))
    total = e.emit(R.strided_slice(padded, [BATCHED_CHANNEL_AXIS], [0], [count]))
    for offset in range(1, size):
        total = e.emit(R.add(total, e.emit(R.strided_slice(padded, [BATCHED_CHANNEL_AXIS], [offset],
                                                           [offset + count]))))
    base = e.emit(R.add(e.emit(R.multiply(total, relax.const(p.alpha / size, DTYPE))), relax.const(p.k, DTYPE)))
    return e.emit(R.divide(args[0], e.emit(R.power(base, relax.const(p.beta, DTYPE)))))


def scale(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    weight = e.weight(layer, "weight")
    shaped = weight.reshape(per_channel_shape(len(weight), layer.rank))
    return e.emit(R.multiply(args[0], e.param(f"{layer.name}.weight", shaped)))


def linear(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    x = args[0]
    rank = len(layer.a.x)
    if layer.p.over == "channels":  # channels last, the matmul, channels back: as PyTorch's nn.Linear applies
        x = e.emit(R.permute_dims(x, [0, *range(2, rank + 1), 1]))
    w = e.param(f"{layer.name}.weight_t", e.weight(layer, "weight").T)  # (in, out): a plain matmul
    y = e.emit(R.matmul(x, w))
    if layer.p.bias:
        y = e.emit(R.add(y, e.param(f"{layer.name}.bias", e.weight(layer, "bias"))))
    if layer.p.over == "channels":
        y = e.emit(R.permute_dims(y, [0, rank, *range(1, rank)]))
    return y


def flatten(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    return e.emit(R.reshape(args[0], batched(layer.a.out, e.batch)))


def crop(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    a: CropAttrs = layer.a
    end = [b + m for b, m in zip(a.starts, spatial(a.out), strict=True)]
    return e.emit(R.strided_slice(args[0], batched_spatial_axes(layer.rank), list(a.starts), end))


def _elementwise(combine: Callable[[relax.Expr, relax.Expr], relax.Expr]) -> Converter:
    """Relax broadcasts the batched tensors as numpy does; an input of lower per-sample rank first gets
    unit axes after the batch, so that the per-sample shapes align at their last axis."""
    def convert(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
        aligned = [e.emit(R.expand_dims(x, list(range(1, 1 + len(layer.a.out) - len(shape)))))
                   if len(shape) < len(layer.a.out) else x for x, shape in zip(args, layer.a.inputs, strict=True)]
        total = aligned[0]
        for other in aligned[1:]:
            total = e.emit(combine(total, other))
        return total
    return convert


def channel_shuffle(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    """N x C x ... -> N x g x C/g x ... -> N x C/g x g x ... -> N x C x ..., as torchvision's channel_shuffle."""
    groups, (count, *rest) = layer.p.groups, layer.a.x
    split = (e.batch, groups, count // groups, *rest)
    order = [0, 2, 1, *range(3, 3 + len(rest))]
    return _regroup(e, args[0], split, order, batched(layer.a.out, e.batch))


def _negative_part(e: Emitter, x: relax.Expr, scale: Callable[[relax.Expr], relax.Expr]) -> relax.Expr:
    """max(x, 0) + scale(min(x, 0)) (PReLU: `scale` multiplies the negative part by the slopes)."""
    zero = relax.const(0.0, DTYPE)
    return e.emit(R.add(e.emit(R.maximum(x, zero)), scale(e.emit(R.minimum(x, zero)))))


def prelu(e: Emitter, layer: Layer, args: list[relax.Expr]) -> relax.Expr:
    slopes = e.weight(layer, "weight")
    weight = e.param(f"{layer.name}.weight", slopes.reshape(per_channel_shape(len(slopes), layer.rank)))
    return _negative_part(e, args[0], lambda negative: e.emit(R.multiply(weight, negative)))


def _unary(fn: Callable[..., relax.Expr], **fixed: Any) -> Converter:
    return lambda e, layer, args: e.emit(fn(args[0], **fixed))


LOWERINGS: Lowerings[Converter] = Lowerings({
    conv_ops.Conv: conv,
    conv_ops.ConvTranspose: conv_transpose,
    conv_ops.LocallyConnected: locally_connected,
    pool.MaxPool: maxpool,
    pool.AvgPool: avgpool,
    pool.GlobalAvgPool: global_avgpool,
    pool.GlobalMaxPool: global_maxpool,
    pool.AdaptiveAvgPool: adaptive_avgpool,
    pool.AdaptiveMaxPool: adaptive_maxpool,
    resize.Upsample: upsample,
    resize.PixelShuffle: pixel_shuffle,
    resize.PixelUnshuffle: pixel_unshuffle,
    linear_ops.Linear: linear,
    structure.Flatten: flatten,
    structure.Reshape: flatten,  # both reinterpret the elements as the output shape
    # Relax's own activations where it has them; other element-wise formulas lower through RelaxPrimitives
    activation.Relu: _unary(R.nn.relu),
    activation.Tanh: _unary(R.tanh),
    activation.Sigmoid: _unary(R.sigmoid),
    activation.Silu: _unary(R.nn.silu),
    activation.Relu6: _unary(R.nn.relu6),
    activation.Prelu: prelu,
    activation.LeakyRelu: lambda e, layer, args: e.emit(R.nn.leakyrelu(args[0], alpha=layer.p.slope)),
    activation.Gelu: lambda e, layer, args: e.emit((R.nn.gelu_tanh if layer.p.approximate else R.nn.gelu)(args[0])),
    activation.Softmax: lambda e, layer, args: e.emit(R.nn.softmax(args[0], axis=batched_axis(layer.p.dim))),
    activation.Dropout: lambda e, layer, args: args[0],  # inference: the identity
    activation.DropPath: lambda e, layer, args: args[0],  # inference: the identity
    norm.BatchNorm: batchnorm,
    norm.FrozenBatchNorm: frozen_batchnorm,
    regions.RoiAlign: roi_align,
    norm.GroupNorm: groupnorm,
    norm.LayerNorm: layernorm,
    norm.InstanceNorm: instancenorm,
    norm.LocalResponseNorm: lrn,
    linear_ops.Scale: scale,
    structure.Identity: lambda e, layer, args: args[0],
    structure.Crop: crop,
    structure.Slice: lambda e, layer, args: e.emit(R.strided_slice(args[0], [batched_axis(layer.a.axis)],
                                                                   [layer.a.start], [layer.a.stop])),
    structure.ChannelShuffle: channel_shuffle,
    merge.Add: _elementwise(R.add),
    merge.Mul: _elementwise(R.multiply),
    merge.Concat: lambda e, layer, args: e.emit(R.concat(args, axis=batched_axis(layer.p.dim))),
})


def lower_layer(e: Emitter, name: str, op: Op, attrs: Attrs[Any], args: list[relax.Expr]) -> relax.Expr:
    """The layer's Relax value: its op's hand-written lowering, else its formula (`unsupported_ops` ran first)."""
    convert = LOWERINGS.find(op)
    if convert is None:
        result: relax.Expr = op.compose(RelaxPrimitives(e), args[0], attrs)
        return result
    return convert(e, Layer(name, attrs, op), args)
