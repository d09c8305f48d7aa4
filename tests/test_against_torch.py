"""Ground truth from real PyTorch layers: inferred shapes and parameter counts equal torch.nn's over
random kernel/stride/padding/dilation/groups/ceil-mode, and both agree on which configurations are
invalid. Receptive fields are checked against input gradients of real networks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cnndsl.diagnostics import SpecError
from cnndsl.ops import REGISTRY, ShapeError
from cnndsl.ops.conv import ConvParams, ConvTransposeParams
from cnndsl.ops.pool import AdaptivePoolParams, AvgPoolParams, PoolParams
from cnndsl.ops.resize import UpsampleParams
from tests.conftest import SpecFiles, layer

# Example counts come from the hypothesis profile (tests/conftest.py): HYPOTHESIS_PROFILE=thorough for more.
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
AVGPOOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
ADAPTIVE = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


def _torch_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """torch's output shape, or None when torch rejects the input. A transposed convolution can return an
    empty tensor (a size of 0) without complaint; cnndsl reports that as E304, so it counts as invalid."""
    try:
        with torch.no_grad():
            out = tuple(module(torch.zeros(1, *shape)).shape[1:])
    except (RuntimeError, ValueError):  # ValueError: e.g. instance norm of one value per channel, in training
        return None
    return out if all(d > 0 for d in out) else None


def _ours(op: str, params: object, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    try:
        out = REGISTRY[op].resolve(params, (shape,)).out
    except ShapeError:
        return None
    return out if all(d > 0 for d in out) else None


@st.composite
def spatial(draw: st.DrawFn, rank: int, low: int = 1, high: int = 12) -> tuple[int, ...]:
    return tuple(draw(st.integers(low, high)) for _ in range(rank))


@SETTINGS
@given(st.data())
def test_conv_shapes_and_params(data: st.DataObject) -> None:
    rank = data.draw(st.integers(1, 3))
    groups = data.draw(st.integers(1, 3))
    cin, cout = groups * data.draw(st.integers(1, 3)), groups * data.draw(st.integers(1, 3))
    size = data.draw(spatial(rank, 1, 14 if rank < 3 else 7))
    kernel, stride, dilation = (data.draw(spatial(rank, 1, h)) for h in (5, 3, 3))
    padding = data.draw(spatial(rank, 0, 3))
    bias = data.draw(st.booleans())
    params = ConvParams(channels=cout, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                        groups=groups, bias=bias)
    module = CONV[rank](cin, cout, kernel, stride, padding, dilation, groups, bias)
    shape = (cin, *size)
    expected = _torch_shape(module, shape)
    assert _ours("conv", params, shape) == expected
    if expected is not None:
        count = REGISTRY["conv"].param_count(REGISTRY["conv"].resolve(params, (shape,)))
        assert count.params == sum(p.numel() for p in module.parameters())


@SETTINGS
@given(st.data())
def test_conv_same_padding_matches_torch_at_stride_1(data: st.DataObject) -> None:
    rank = data.draw(st.integers(1, 2))
    size, kernel = data.draw(spatial(rank, 1, 12)), data.draw(spatial(rank, 1, 6))
    dilation = data.draw(spatial(rank, 1, 3))
    params = ConvParams(channels=2, kernel=kernel, padding="same", dilation=dilation)
    module = CONV[rank](1, 2, kernel, 1, "same", dilation)
    assert _ours("conv", params, (1, *size)) == _torch_shape(module, (1, *size))


@SETTINGS
@given(st.data())
def test_conv_transpose_shapes(data: st.DataObject) -> None:
    rank = data.draw(st.integers(1, 3))
    size = data.draw(spatial(rank, 1, 8 if rank < 3 else 5))
    kernel, stride, dilation = (data.draw(spatial(rank, 1, h)) for h in (4, 3, 2))
    padding = data.draw(spatial(rank, 0, 2))
    output_padding = data.draw(spatial(rank, 0, 2))
    params = ConvTransposeParams(channels=3, kernel=kernel, stride=stride, padding=padding,
                                 output_padding=output_padding, dilation=dilation)
    shape = (2, *size)
    try:
        module = CONV_T[rank](2, 3, kernel, stride, padding, output_padding, dilation=dilation)
    except (RuntimeError, ValueError):
        expected = None
    else:
        expected = _torch_shape(module, shape)
    assert _ours("conv_transpose", params, shape) == expected
    if expected is not None:
        op = REGISTRY["conv_transpose"]
        assert op.param_count(op.resolve(params, (shape,))).params == sum(
            p.numel() for p in module.parameters())


@SETTINGS
@given(st.data())
def test_pool_shapes_with_ceil_mode(data: st.DataObject) -> None:
    rank = data.draw(st.integers(1, 3))
    size = data.draw(spatial(rank, 1, 14 if rank < 3 else 7))
    kernel, stride = data.draw(spatial(rank, 1, 5)), data.draw(spatial(rank, 1, 4))
    padding = data.draw(spatial(rank, 0, 2))
    ceil_mode = data.draw(st.booleans())
    shape = (2, *size)
    if data.draw(st.booleans()):
        dilation = data.draw(spatial(rank, 1, 2))
        ours = _ours("maxpool", PoolParams(kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                                           ceil=ceil_mode), shape)
        module: nn.Module = MAXPOOL[rank](kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    else:
        ours = _ours("avgpool", AvgPoolParams(kernel=kernel, stride=stride, padding=padding, ceil=ceil_mode), shape)
        module = AVGPOOL[rank](kernel, stride, padding, ceil_mode=ceil_mode)
    assert ours == _torch_shape(module, shape)


@SETTINGS
@given(st.data())
def test_adaptive_pool_and_upsample_shapes(data: st.DataObject) -> None:
    rank = data.draw(st.integers(1, 3))
    size = data.draw(spatial(rank, 1, 9))
    out = data.draw(spatial(rank, 1, 9))
    shape = (2, *size)
    assert _ours("adaptive_avgpool", AdaptivePoolParams(size=out), shape) == _torch_shape(ADAPTIVE[rank](out), shape)
    scale = data.draw(spatial(rank, 1, 3))
    mode = data.draw(st.sampled_from(["nearest", "linear"]))
    torch_mode = mode if mode == "nearest" else {1: "linear", 2: "bilinear", 3: "trilinear"}[rank]
    upsample = nn.Upsample(scale_factor=tuple(float(s) for s in scale), mode=torch_mode)
    assert _ours("upsample", UpsampleParams(scale=scale, mode=mode), shape) == _torch_shape(upsample, shape)


# ---- receptive fields against input gradients ----------------------------------------------------
# 1-D networks with every weight 1 and no bias: output position j has a non-zero gradient exactly on
# the input positions it sees. Interior positions j and j+1 give the size, the stride and the padding.
RF_NETWORKS = [
    ("conv(1, 3) -> conv(1, 3, stride=2) -> conv(1, 5, dilation=2)",
     nn.Sequential(nn.Conv1d(1, 1, 3), nn.Conv1d(1, 1, 3, 2), nn.Conv1d(1, 1, 5, dilation=2))),
    ("conv(1, 3, padding=1) -> avgpool(2) -> conv(1, 3, stride=2, padding=1)",
     nn.Sequential(nn.Conv1d(1, 1, 3, padding=1), nn.AvgPool1d(2), nn.Conv1d(1, 1, 3, 2, 1))),
    ("conv(1, 7, stride=2, padding=3) -> avgpool(3, stride=2, padding=1) -> conv(1, 3, padding=1)",
     nn.Sequential(nn.Conv1d(1, 1, 7, 2, 3), nn.AvgPool1d(3, 2, 1), nn.Conv1d(1, 1, 3, padding=1))),
]


def _gradient_extent(module: nn.Module, n: int, j: int) -> tuple[int, int]:
    for parameter in module.parameters():
        nn.init.ones_(parameter) if parameter.dim() > 1 else nn.init.zeros_(parameter)
    x = torch.ones(1, 1, n, requires_grad=True)
    module(x)[0, 0, j].backward()
    assert x.grad is not None
    seen = torch.nonzero(x.grad[0, 0]).flatten().tolist()
    return seen[0], seen[-1]


@pytest.mark.parametrize(("chain", "module"), RF_NETWORKS, ids=[c for c, _ in RF_NETWORKS])
def test_receptive_field_matches_gradients(specs: SpecFiles, chain: str, module: nn.Module) -> None:
    n = 200
    rf = layer(specs.load(f"input x: 1 x {n}\noutput y = x -> {chain} as probe\n"), "probe").rf
    assert rf is not None
    size, stride, padding = rf.size[0], rf.stride[0], rf.padding[0]
    j = 10  # an interior position: its window lies inside the input
    first, last = _gradient_extent(module, n, j)
    assert last - first + 1 == size
    assert first == -padding + j * stride  # type: ignore[operator]
    assert _gradient_extent(module, n, j + 1)[0] - first == stride


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.data())
def test_spec_text_to_shape_matches_torch(specs: SpecFiles, data: st.DataObject) -> None:
    """The whole path, spec text to report, on a random convolution followed by a random pooling."""
    size = data.draw(spatial(2, 6, 20))
    kernel, stride, dilation = (data.draw(spatial(2, 1, h)) for h in (4, 3, 2))
    padding = data.draw(spatial(2, 0, 2))
    pool = data.draw(st.integers(1, 3))
    ceil_mode = data.draw(st.booleans())
    conv = nn.Conv2d(3, 8, kernel, stride, padding, dilation)
    module = nn.Sequential(conv, nn.MaxPool2d(pool, ceil_mode=ceil_mode))
    expected = _torch_shape(module, (3, *size))
    text = (f"input x: 3 x {size[0]} x {size[1]}\noutput y = x -> conv(8, {kernel}, stride={stride}, "
            f"padding={padding}, dilation={dilation}) -> maxpool({pool}, ceil={str(ceil_mode).lower()}) as probe\n")
    try:
        network = specs.load(text)
    except SpecError:
        assert expected is None
        return
    assert tuple(layer(network, "probe").shape) == expected
    assert network.report().totals.params == sum(p.numel() for p in module.parameters())


class _Sum(nn.Module):
    """The sum of two paths, as `[a, b] -> add`."""

    def __init__(self, a: nn.Module, b: nn.Module) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


def test_receptive_field_through_a_residual_merge(specs: SpecFiles) -> None:
    network = specs.load("input x: 1 x 200\ny = x -> conv(1, 3, padding=1) -> conv(1, 5, padding=2)\n"
                         "s = x -> conv(1, 1)\noutput z = [y, s] -> add -> conv(1, 3, stride=2) as probe\n")
    rf = layer(network, "probe").rf
    assert rf is not None
    residual = _Sum(nn.Sequential(nn.Conv1d(1, 1, 3, padding=1), nn.Conv1d(1, 1, 5, padding=2)), nn.Conv1d(1, 1, 1))
    first, last = _gradient_extent(nn.Sequential(residual, nn.Conv1d(1, 1, 3, stride=2)), 200, 10)
    assert (last - first + 1, first) == (rf.size[0], -rf.padding[0] + 10 * rf.stride[0])  # type: ignore[operator]


@pytest.mark.parametrize(("factor", "kernel"), [(2, 3), (2, 4), (3, 5), (4, 2)])
def test_receptive_field_size_after_nearest_upsampling(specs: SpecFiles, factor: int, kernel: int) -> None:
    """After x`factor` nearest up-sampling, a k-wide window reads ceil((k-1)/f) + 1 input pixels at most."""
    network = specs.load(f"input x: 1 x 40\noutput y = x -> upsample({factor}) -> conv(1, {kernel}) as probe\n")
    rf = layer(network, "probe").rf
    module = nn.Sequential(nn.Upsample(scale_factor=factor, mode="nearest"), nn.Conv1d(1, 1, kernel))
    widest = max(last - first + 1 for first, last in (_gradient_extent(module, 40, j) for j in range(20, 20 + factor)))
    assert rf is not None and rf.size[0] == widest


def test_misaligned_merge_reports_the_union_and_warns(specs: SpecFiles) -> None:
    network = specs.load("input x: 1 x 50\ny = x -> conv(1, 3, padding=((2, 0),))\ns = x -> conv(1, 1)\n"
                         "output z = [y, s] -> add as probe\n")
    assert [d.code for d in network.diagnostics if d.code == "W103"] == ["W103"]
    rf = layer(network, "probe").rf
    module = _Sum(nn.Sequential(nn.ConstantPad1d((2, 0), 0.0), nn.Conv1d(1, 1, 3)), nn.Conv1d(1, 1, 1))
    first, last = _gradient_extent(module, 50, 10)
    assert rf is not None and (last - first + 1, first) == (rf.size[0], 10 - rf.padding[0])  # type: ignore[operator]


def _rows_read(module: nn.Module, channels: int, n: int, j: int) -> tuple[int, int]:
    """First and last input row that output (j, j) of a 2-D `module` depends on (any channel, any column)."""
    for parameter in module.parameters():
        nn.init.ones_(parameter) if parameter.dim() > 1 else nn.init.zeros_(parameter)
    x = torch.ones(1, channels, n, n, requires_grad=True)
    module(x)[0, 0, j, j].backward()
    assert x.grad is not None
    rows = torch.nonzero(x.grad[0].abs().sum(dim=(0, 2))).flatten().tolist()
    return rows[0], rows[-1]


@pytest.mark.parametrize(("factor", "kernel"), [(2, 3), (2, 4), (3, 5)])
def test_receptive_field_through_pixel_shuffle_and_unshuffle(specs: SpecFiles, factor: int, kernel: int) -> None:
    """Pixel shuffle reads like nearest up-sampling: the field is the widest window over `factor` neighbouring
    outputs. Pixel unshuffle gathers `factor` positions per output: a window `factor` wide at stride `factor`."""
    n = 24
    shuffled = layer(specs.load(f"input x: {factor * factor} x {n} x {n}\n"
                                f"output y = x -> pixel_shuffle({factor}) -> conv(1, {kernel}) as probe\n"), "probe").rf
    module = nn.Sequential(nn.PixelShuffle(factor), nn.Conv2d(1, 1, kernel))
    widest = max(last - first + 1 for first, last in (_rows_read(module, factor * factor, n, j)
                                                      for j in range(8, 8 + factor)))
    assert shuffled is not None and shuffled.size == [widest, widest]

    spec = f"input x: 1 x {n} x {n}\noutput y = x -> pixel_unshuffle({factor}) -> conv(1, {kernel}) as probe\n"
    unshuffled = layer(specs.load(spec), "probe").rf
    module = nn.Sequential(nn.PixelUnshuffle(factor), nn.Conv2d(factor * factor, 1, kernel))
    first, last = _rows_read(module, 1, n, 2)
    assert unshuffled is not None
    assert (unshuffled.size[0], unshuffled.stride[0], unshuffled.padding[0]) == (last - first + 1, factor, 0)
    assert first == 2 * factor


def test_receptive_field_through_a_squeeze_excitation_gate_is_the_whole_input(specs: SpecFiles) -> None:
    """A gate from global pooling, broadcast over the positions of the path it scales: every output
    position sees the whole input (the gate's field), as after global pooling; no misalignment warning."""
    n = 50
    network = specs.load(f"input x: 1 x {n}\nc = x -> conv(1, 3)\ng = c -> global_avgpool -> conv(1, 1) -> sigmoid\n"
                         "output y = [c, g] -> mul -> conv(1, 3) as probe\n")
    assert not [d for d in network.diagnostics if d.code == "W103"]
    rf = layer(network, "probe").rf
    assert rf is not None and (rf.size[0], rf.stride[0]) == (n, 0)

    class SqueezeExcite(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.gate, self.head = nn.Conv1d(1, 1, 3), nn.Conv1d(1, 1, 1), nn.Conv1d(1, 1, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            c = self.conv(x)
            return self.head(c * torch.sigmoid(self.gate(c.mean(dim=2, keepdim=True))))

    for j in (0, 20):
        assert _gradient_extent(SqueezeExcite(), n, j) == (0, n - 1)


@pytest.mark.parametrize("op", ["relu6", "hardswish", "hardsigmoid", "mish", "elu", "prelu(per_channel=true)",
                                "scale(init=0.5)", "drop_path(0.3)", "lrn(2)", "channel_shuffle(2)",
                                "slice(5, 45, dim=1)", "slice(0, 1)"])
def test_receptive_field_of_new_ops_matches_gradients(specs: SpecFiles, op: str) -> None:
    """The analytic field through each op against the positions the compiled module's output actually
    depends on (every weight 1, every bias 0)."""
    n, j = 60, 12
    network = specs.load(f"input x: 2 x {n}\noutput y = x -> conv(2, 3) -> {op} -> conv(2, 3) as probe\n")
    rf = layer(network, "probe").rf
    module = network.to_torch()
    for name, parameter in module.named_parameters():
        nn.init.ones_(parameter) if parameter.dim() > 1 or "weight" in name else nn.init.zeros_(parameter)
    x = (0.1 * torch.rand(1, 2, n)).requires_grad_()  # small and positive: every activation has a slope
    module(x)[0, 0, j].backward()
    assert x.grad is not None
    seen = torch.nonzero(x.grad[0].abs().sum(dim=0)).flatten().tolist()
    assert rf is not None and (seen[-1] - seen[0] + 1, seen[0]) == (rf.size[0], -rf.padding[0] + j * rf.stride[0])


@SETTINGS
@given(st.data())
def test_pixel_shuffle_and_unshuffle_shapes(data: st.DataObject) -> None:
    from cnndsl.ops.resize import PixelShuffleParams

    factor = data.draw(st.integers(1, 4))
    shape = (data.draw(st.integers(1, 40)), *data.draw(spatial(2, 1, 12)))
    params = PixelShuffleParams(factor=factor)
    assert _ours("pixel_shuffle", params, shape) == _torch_shape(nn.PixelShuffle(factor), shape)
    assert _ours("pixel_unshuffle", params, shape) == _torch_shape(nn.PixelUnshuffle(factor), shape)


@SETTINGS
@given(st.data())
def test_new_ops_accept_what_torch_nn_accepts(data: st.DataObject) -> None:
    """Shape rules of the ops added for modern networks against the torch.nn layer with the same arguments:
    the same output shape, and an error exactly where torch raises."""
    from cnndsl.ops.activation import EluParams, PreluParams, SoftplusParams
    from cnndsl.ops.base import NoParams
    from cnndsl.ops.norm import InstanceNormParams, LrnParams
    from cnndsl.ops.structure import ChannelShuffleParams

    shape = (data.draw(st.integers(1, 12)), *data.draw(spatial(2, 1, 6)))
    groups, size = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 5))
    cases = [
        ("channel_shuffle", ChannelShuffleParams(groups=groups), nn.ChannelShuffle(groups)),
        ("instancenorm", InstanceNormParams(), nn.InstanceNorm2d(shape[0])),
        ("lrn", LrnParams(size=size), nn.LocalResponseNorm(size)),
        ("prelu", PreluParams(per_channel=True), nn.PReLU(shape[0])),
        ("elu", EluParams(alpha=0.5), nn.ELU(0.5)),
        ("hardswish", NoParams(), nn.Hardswish()),
        ("mish", NoParams(), nn.Mish()),
        ("softplus", SoftplusParams(beta=2.0), nn.Softplus(2.0)),
    ]
    for op, params, module in cases:
        assert _ours(op, params, shape) == _torch_shape(module, shape), (op, shape)
