"""Size formulas, each written once. The checker, the backends and the tests all call these."""

from __future__ import annotations


def effective_kernel(kernel: int, dilation: int) -> int:
    """Span of a dilated kernel: d(k-1)+1."""
    return dilation * (kernel - 1) + 1


def conv_output_size(n: int, kernel: int, stride: int, pad_before: int, pad_after: int,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a convolution or pooling window sweep along one axis.

    floor((n + pads - d(k-1) - 1) / s) + 1, as PyTorch computes it. With ceil_mode (pooling only),
    the division rounds up, but the last window must start inside the input or the left padding
    (PyTorch's rule), else it is dropped.
    """
    span = n + pad_before + pad_after - effective_kernel(kernel, dilation)
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= n + pad_before:
        out -= 1
    return out


def conv_transpose_output_size(n: int, kernel: int, stride: int, pad_before: int, pad_after: int,
                               dilation: int = 1, output_padding: int = 0) -> int:
    """(n-1)s - pads + d(k-1) + output_padding + 1, as PyTorch's ConvTranspose computes it."""
    return (n - 1) * stride - pad_before - pad_after + effective_kernel(kernel, dilation) + output_padding


def same_padding(n: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Padding for `padding=same`: the output has ceil(n / s) positions.

    The total padding is max((ceil(n/s) - 1) * s + d(k-1) + 1 - n, 0), split with the smaller half
    before and the larger half after (TensorFlow's rule; for stride 1 it equals PyTorch's 'same').
    """
    out = -(-n // stride)
    total = max((out - 1) * stride + effective_kernel(kernel, dilation) - n, 0)
    return total // 2, total - total // 2


def unread_tail(n: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int = 1,
                ceil_mode: bool = False) -> int:
    """Input positions at the end of an axis that no window reads (the notes' 7x7, k3, s3 case)."""
    out = conv_output_size(n, kernel, stride, pad_before, pad_after, dilation, ceil_mode)
    last_read = (out - 1) * stride + effective_kernel(kernel, dilation) - pad_before  # exclusive, input coords
    return max(0, n - last_read)


def adaptive_windows(n: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows [start, end) along one axis."""
    return [((i * n) // out, -(-((i + 1) * n) // out)) for i in range(out)]


def widest_adaptive_window(n: int, out: int) -> int:
    """The widest of `adaptive_windows(n, out)`, in O(1) (an output of 10^8 positions must not list
    10^8 windows). Window i spans ceil((a_i + n) / out) positions, a_i = i*n mod out; the largest a_i is
    out - gcd(n, out)."""
    from math import gcd

    return -(-(n + out - gcd(n, out)) // out)
