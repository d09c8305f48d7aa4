"""The few nn.Modules PyTorch lacks: merges, centre crop, the locally connected layer, and
convolution/pooling with asymmetric padding (TensorFlow-style `same` at stride > 1).

Everything else lowers to torch.nn's own classes, so a compiled network prints, saves and loads like
hand-written PyTorch.
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...layout import per_channel_shape

Pads = tuple[tuple[int, int], ...]


def flat_pad(pads: Pads) -> tuple[int, ...]:
    """(before, after) per spatial axis, first axis first, as F.pad wants them: last axis first."""
    return tuple(v for before, after in reversed(pads) for v in (before, after))


class _Elementwise(nn.Module):
    """An element-wise merge of its inputs, broadcasting as numpy does on the per-sample shapes: an input
    of lower per-sample rank gets unit axes after the batch (`expand`: how many, per input). In place
    into the first input when the builder knows nothing else reads it and it has the output's shape (as
    torchvision's `out += identity`)."""

    def __init__(self, expand: tuple[int, ...] = (), inplace: bool = False):
        super().__init__()
        self.expand = expand
        self.inplace = inplace

    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def combine_(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if any(self.expand):
            xs = tuple(_unit_axes(x, n) for x, n in zip(xs, self.expand, strict=True))
        if self.inplace:
            first = xs[0]
            for x in xs[1:]:
                first = self.combine_(first, x)
            return first
        return reduce(self.combine, xs)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


def _unit_axes(x: torch.Tensor, count: int) -> torch.Tensor:
    for _ in range(count):
        x = x.unsqueeze(1)
    return x


class Add(_Elementwise):
    """Element-wise sum (a residual merge)."""

    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b

    def combine_(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a.add_(b)


class Mul(_Elementwise):
    """Element-wise product (a gate)."""

    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b

    def combine_(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a.mul_(b)


class Concat(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Crop(nn.Module):
    """Crop of the spatial axes at fixed offsets and sizes; a second input (the `like` tensor) is
    ignored: the size was resolved from its shape at compile time."""

    def __init__(self, starts: tuple[int, ...], sizes: tuple[int, ...]):
        super().__init__()
        self.starts, self.sizes = starts, sizes

    def forward(self, x: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
        index = tuple(slice(start, start + size) for start, size in zip(self.starts, self.sizes, strict=True))
        return x[(slice(None), slice(None), *index)]

    def extra_repr(self) -> str:
        return f"size={self.sizes}, offset={self.starts}"


def _padded(base: type[nn.Module], value: float = 0.0) -> type[nn.Module]:
    """A subclass of a torch.nn conv/pool class that pads (before, after) per axis first. Its state_dict
    is the base class's, so weights move freely between the two."""

    class Padded(base):  # type: ignore[valid-type, misc]
        def __init__(self, pads: Pads, *args: object, **kwargs: object):
            super().__init__(*args, **kwargs)
            self.pads = pads

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(F.pad(x, flat_pad(self.pads), value=value))

        def extra_repr(self) -> str:
            return f"{super().extra_repr()}, pads={self.pads}"

    Padded.__name__ = Padded.__qualname__ = f"Padded{base.__name__}"
    return Padded


PADDED_CONV = {1: _padded(nn.Conv1d), 2: _padded(nn.Conv2d), 3: _padded(nn.Conv3d)}
PADDED_MAXPOOL = {rank: _padded(cls, -math.inf) for rank, cls in
                  {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}.items()}
_AVGPOOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


class PaddedAvgPool(nn.Module):
    """Average pooling with asymmetric padding. Counting the padding: pad with zeros, then pool.
    Not counting it: pool the zero-padded input and a zero-padded mask of ones; their ratio is the mean
    of the real elements (both pools share the divisor, which cancels)."""

    def __init__(self, rank: int, pads: Pads, kernel: tuple[int, ...], stride: tuple[int, ...], ceil_mode: bool,
                 count_include_pad: bool):
        super().__init__()
        self.pads, self.count_include_pad = pads, count_include_pad
        self.pool = _AVGPOOL[rank](kernel, stride, 0, ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = flat_pad(self.pads)
        total = self.pool(F.pad(x, pad))
        if self.count_include_pad:
            return total
        mask = F.pad(torch.ones_like(x[:1, :1]), pad)
        return total / self.pool(mask)


class Slice(nn.Module):
    """Positions [start, stop) along one axis of the batched tensor: a view, as torchvision's splits."""

    def __init__(self, axis: int, start: int, stop: int):
        super().__init__()
        self.axis, self.start, self.stop = axis, start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.narrow(self.axis, self.start, self.stop - self.start)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, start={self.start}, stop={self.stop}"


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle, written as torchvision's `channel_shuffle` (view, transpose, flatten), which
    exports to ONNX where `nn.ChannelShuffle` does not."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, *rest = x.shape
        grouped = x.reshape(batch, self.groups, channels // self.groups, *rest)
        return grouped.transpose(1, 2).reshape(batch, channels, *rest)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class FrozenBatchNorm(nn.Module):
    """torchvision.ops.FrozenBatchNorm2d for any spatial rank, with its buffers (weight, bias, running_mean,
    running_var) and arithmetic: x * scale + shift, scale = weight / sqrt(running_var + eps). A checkpoint of
    batch norm loads into it as into torchvision's: its num_batches_tracked is dropped."""

    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, channels: int, eps: float, rank: int):
        super().__init__()
        self.eps, self.shape = eps, (1, channels, *([1] * rank))
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(self.shape) + shift.reshape(self.shape)

    def extra_repr(self) -> str:
        return f"{self.shape[1]}, eps={self.eps}"


class RoiAlign(nn.Module):
    """torchvision.ops.roi_align over N samples' K boxes each (N x K x 4): all boxes in one R x 5 list with
    their sample's index (what torchvision's own list-of-boxes form builds; an export traces it at any
    batch), regrouped to N x K x C x h x w."""

    def __init__(self, output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int, aligned: bool):
        super().__init__()
        from torchvision.ops import roi_align  # the one op that needs torchvision: imported where it is lowered

        self.roi_align = roi_align
        self.output_size, self.spatial_scale = output_size, spatial_scale
        self.sampling_ratio, self.aligned = sampling_ratio, aligned

    def forward(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        n, k = boxes.shape[0], boxes.shape[1]
        index = torch.arange(n, dtype=boxes.dtype, device=boxes.device).repeat_interleave(k).unsqueeze(1)
        rois = torch.cat([index, boxes.reshape(-1, 4)], dim=1)
        pooled = self.roi_align(x, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)
        return pooled.reshape(n, k, *pooled.shape[1:])

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")


class ChannelLayerNorm(nn.LayerNorm):
    """Layer norm over each position's channels of an N x C x ... tensor (torchvision's LayerNorm2d):
    channels moved last, normalised, moved back. Its state_dict is nn.LayerNorm's (weight, bias)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class ChannelLinear(nn.Linear):
    """nn.Linear on each position's channels of an N x C x ... tensor (ConvNeXt's MLP): channels moved
    last, transformed, moved back. Its state_dict is nn.Linear's (weight out x in, bias)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class Scale(nn.Module):
    """A learnable multiplier per channel (layer scale), stored C x 1 x ... as torchvision's ConvNeXt
    stores its `layer_scale`, so that a checkpoint's tensor fits as it is."""

    def __init__(self, channels: int, init: float = 1.0, rank: int = 2):
        super().__init__()
        self.weight = nn.Parameter(torch.full(per_channel_shape(channels, rank)[1:], float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    def extra_repr(self) -> str:
        return f"channels={self.weight.numel()}"


class DropPath(nn.Module):
    """Stochastic depth, torchvision's StochasticDepth(p, mode="row"): in training each sample's input is
    zeroed with probability p and the rest scaled by 1 / (1 - p); the identity at inference."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0], *(1,) * (x.dim() - 1))).bernoulli_(1.0 - self.p)
        return x * keep.div_(1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Reshape(nn.Module):
    """The per-sample elements as another shape (the batch axis is kept)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class LocallyConnected(nn.Module):
    """A convolution's windows with separate weights and bias at every output position.

    weight: (C_out, *output_size, C_in * prod(kernel)); bias: (C_out, *output_size). Initialised like
    torch.nn.Conv (uniform in +-1/sqrt(fan_in)). The class name avoids "Conv": torchinfo counts
    Mult-Adds of classes named *Conv* per output position, which would count these weights many times.
    """

    def __init__(self, in_channels: int, out_channels: int, out_size: tuple[int, ...], kernel: tuple[int, ...],
                 stride: tuple[int, ...], pads: Pads, dilation: tuple[int, ...], bias: bool):
        super().__init__()
        self.kernel, self.stride, self.pads, self.dilation = kernel, stride, pads, dilation
        fan_in = in_channels * math.prod(kernel)
        self.weight = nn.Parameter(torch.empty(out_channels, *out_size, fan_in))
        self.bias = nn.Parameter(torch.empty(out_channels, *out_size)) if bias else None
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rank = len(self.kernel)
        x = F.pad(x, flat_pad(self.pads))
        for axis, (k, s, d) in enumerate(zip(self.kernel, self.stride, self.dilation, strict=True)):
            x = x.unfold(2 + axis, (k - 1) * d + 1, s)  # appends a window axis
            if d > 1:
                x = x[..., ::d]
        # (N, C, *out, *kernel) -> (N, *out, C * prod(kernel)), the layout of the weight's last axis
        order = (0, *range(2, 2 + rank), 1, *range(2 + rank, 2 + 2 * rank))
        x = x.permute(order).flatten(1 + rank)
        y = torch.einsum("n...f,o...f->no...", x, self.weight)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        out_channels, *out_size, _ = self.weight.shape
        return (f"out_channels={out_channels}, output_size={tuple(out_size)}, kernel_size={self.kernel}, "
                f"stride={self.stride}, pads={self.pads}, dilation={self.dilation}")
