"""Where the axes are, for every stage: one place for the tensor layout rules.

A spec's shapes are per sample and channels first: `(C, *spatial)`, e.g. `3 x 224 x 224`. The backends
compute on batched tensors, `(N, C, *spatial)` (PyTorch's NCHW; the TVM backend may convert its
kernels to NHWC internally, but its inputs, outputs and weights keep this layout).
"""

from __future__ import annotations

from collections.abc import Sequence

Shape = tuple[int, ...]

CHANNEL_AXIS = 0  # of a per-sample shape
BATCHED_CHANNEL_AXIS = 1  # of a batched tensor
_SPATIAL_NAMES = {1: "L", 2: "H x W", 3: "D x H x W"}


def spatial_rank(shape: Shape) -> int:
    """Spatial axes of a per-sample shape (C x H x W has 2; a flat feature vector has 0)."""
    return len(shape) - 1


def channels(shape: Shape) -> int:
    return shape[CHANNEL_AXIS]


def spatial(shape: Shape) -> Shape:
    return shape[CHANNEL_AXIS + 1:]


def batched(shape: Shape, batch: int) -> Shape:
    return (batch, *shape)


def batched_axis(dim: int) -> int:
    """A per-sample axis (0 = channels, as softmax and concat take it) as an axis of the batched tensor;
    negative axes count from the end and stay as they are."""
    return dim + 1 if dim >= 0 else dim


def batched_spatial_axes(rank: int) -> list[int]:
    """The spatial axes of a batched tensor with `rank` spatial axes: [2, 3] for N x C x H x W."""
    return list(range(BATCHED_CHANNEL_AXIS + 1, BATCHED_CHANNEL_AXIS + 1 + rank))


def per_channel_shape(count: int, rank: int) -> Shape:
    """(1, C, 1, ...): a per-channel vector that broadcasts over a batched tensor of `rank` spatial axes."""
    return (1, count, *(1,) * rank)


def spatial_names(rank: int) -> str:
    return _SPATIAL_NAMES.get(rank, "...")


def fmt_shape(shape: Sequence[int | str]) -> str:
    """`3 x 224 x 224`, as reports and diagnostics write shapes (`N x 3 x 224 x 224` with a batch axis)."""
    return " x ".join(str(d) for d in shape) if shape else "scalar"
