"""Winograd convolution for tuned CPU builds: 3x3, stride-1 NHWC convolutions as F(4x4, 3x3)
(Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016).

A 3x3 convolution computes each 4x4 output tile from a 6x6 input tile with 36 multiplies per
channel pair instead of 144: the batched matrix product at its heart does a quarter of a direct
convolution's multiply-accumulates, and the input and output transforms add work proportional to the
activations only. The weights' transform (U = G g G^T) depends on the weights alone, so it runs once
here, in numpy, and the kernel reads the transformed weights as a constant. TOPI's own winograd compute
cannot take transformed weights in TVM 0.27 (`pre_computed=True` raises), so the compute is written here,
following TOPI's `_conv2d_winograd_nhwc_impl`, with the blocks named and annotated as MetaSchedule's CPU
Winograd schedule rules (`conv2d_nhwc_winograd_data_pack`, `..._inverse`) expect.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import relax, te, topi

TILE = 4  # output tile m: F(4x4, 3x3), alpha = m + r - 1 = 6
KERNEL = 3
# Below this many input channels the transforms cost more than the product saves (an RGB stem).
MIN_CHANNELS = 16


def transform_matrices(tile: int = TILE, kernel: int = KERNEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cook-Toom A (alpha x m), B (alpha x alpha), G (alpha x r), as TOPI derives them."""
    from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points

    a, b, g = _cook_toom_convolution(_interpolation_points(tile + kernel - 2), tile, kernel)
    return np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(g, np.float64)


def transform_weights(hwio: np.ndarray, tile: int = TILE) -> np.ndarray:
    """U[eps, nu, co, ci] = sum_kh,kw G[eps, kh] * w[kh, kw, ci, co] * G[nu, kw]."""
    _, _, g = transform_matrices(tile, hwio.shape[0])
    return np.einsum("ek,nl,klio->enoi", g, g, hwio.astype(np.float64)).astype(hwio.dtype)


def eligible(call: relax.Call) -> bool:
    """A 3x3, stride-1, undilated, ungrouped NHWC/HWIO 2-D convolution with constant weights and enough
    channels for the transforms to pay."""
    attrs = call.attrs
    weight = call.args[1]
    if not isinstance(weight, tvm.ir.GenericConst) or str(attrs.data_layout) != "NHWC" or \
            str(attrs.kernel_layout) != "HWIO" or str(attrs.out_layout) not in ("NHWC", ""):
        return False
    kh, kw, ci, _ = (int(d) for d in weight.value.shape)
    return ((kh, kw) == (KERNEL, KERNEL) and [int(s) for s in attrs.strides] == [1, 1]
            and [int(d) for d in attrs.dilation] == [1, 1] and int(attrs.groups) == 1 and ci >= MIN_CHANNELS)


def winograd_nhwc(data: te.Tensor, packed: te.Tensor, padding: tuple[int, int, int, int],
                  tile: int = TILE) -> te.Tensor:
    """NHWC output of a 3x3 stride-1 convolution of `data` (N, H, W, CI) with transformed weights
    `packed` (alpha, alpha, CO, CI); `padding` is (top, left, bottom, right)."""
    n, h, w, ci = (int(d) for d in data.shape)
    alpha, _, co, _ = (int(d) for d in packed.shape)
    m = tile
    a_np, b_np, _ = transform_matrices(m, alpha - m + 1)
    a = topi.nn.winograd_util.const_matrix(a_np.astype("float32"), "A")
    b = topi.nn.winograd_util.const_matrix(b_np.astype("float32"), "B")
    top, left, bottom, right = padding
    out_h, out_w = h + top + bottom - alpha + m, w + left + right - alpha + m
    tiles_h, tiles_w = (out_h + m - 1) // m, (out_w + m - 1) // m
    tiles = n * tiles_h * tiles_w
    # pad so that every tile's alpha x alpha window is inside
    extra_h = (tiles_h - 1) * m + alpha - (h + top)
    extra_w = (tiles_w - 1) * m + alpha - (w + left)
    data_pad = topi.nn.pad(data, (0, top, left, 0), (0, extra_h, extra_w, 0), name="data_pad",
                           attrs={"schedule_rule": "None"})
    input_tile = te.compute(
        (alpha, alpha, tiles, ci),
        lambda eps, nu, p, c: data_pad[p // (tiles_h * tiles_w), ((p // tiles_w) % tiles_h) * m + eps,
                                       (p % tiles_w) * m + nu, c],
        name="input_tile", attrs={"schedule_rule": "None"})
    data_pack = _tile_transform(input_tile, b, alpha, "data_pack", "conv2d_nhwc_winograd_data_pack")
    rc = te.reduce_axis((0, ci), name="ci")
    bgemm = te.compute(
        (alpha, alpha, tiles, co),
        lambda eps, nu, p, o: te.sum(data_pack[eps, nu, p, rc] * packed[eps, nu, o, rc], axis=[rc]),
        name="bgemm", attrs={"layout_free_placeholders": [packed], "meta_schedule.write_cache_level": [2]})
    inverse = _tile_transform(bgemm, a, m, "inverse", "conv2d_nhwc_winograd_inverse")
    return te.compute(
        (n, out_h, out_w, co),
        lambda b_, y, x, o: inverse[y % m, x % m, b_ * tiles_h * tiles_w + (y // m) * tiles_w + (x // m), o],
        name="conv2d_winograd")


def _tile_transform(tiles: te.Tensor, matrix: te.Tensor, size: int, name: str, rule: str) -> te.Tensor:
    """out[i, j, p, c] = sum_a,b tiles[a, b, p, c] * matrix[a, i] * matrix[b, j]: the input transform
    (B^T d B, into the Winograd domain) and the output transform (A^T m A, back out of it) alike."""
    extent = int(tiles.shape[0])
    r_a, r_b = te.reduce_axis((0, extent), "r_a"), te.reduce_axis((0, extent), "r_b")
    return te.compute(
        (size, size, *tiles.shape[2:]),
        lambda i, j, p, c: te.sum(tiles[r_a, r_b, p, c] * matrix[r_a, i] * matrix[r_b, j], axis=[r_a, r_b]),
        name=name, attrs={"auto_scheduler_simplify_const_tensor_indices": ["i", "j", "r_a", "r_b"],
                          "schedule_rule": rule})


@relax.expr_functor.mutator
class _ToWinograd(relax.PyExprMutator):  # type: ignore[misc]
    def __init__(self, module: tvm.IRModule) -> None:
        super().__init__(module)
        self.module = module
        self.rewritten = 0

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = self.visit_expr_post_order(call)
        if not (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.nn.conv2d" and eligible(call)):
            return call
        packed = relax.const(transform_weights(call.args[1].value.numpy()))
        pads = [int(p) for p in call.attrs.padding]  # (top, left, bottom, right)
        self.rewritten += 1
        return self.builder_.call_te(winograd_nhwc, call.args[0], packed, tuple(pads),
                                     primfunc_name_hint="conv2d_winograd")

    def run(self) -> tvm.IRModule:
        for gv, func in self.module.functions_items():
            if isinstance(func, relax.Function):
                self.builder_.update_func(gv, self.visit_expr(func))
        return self.builder_.get()


def to_winograd(module: tvm.IRModule) -> tuple[tvm.IRModule, int]:
    """`module` with every eligible convolution computed by Winograd; how many were rewritten."""
    rewriter = _ToWinograd(module)
    result: Any = rewriter.run()
    return result, rewriter.rewritten
