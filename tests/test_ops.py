"""Per-op tables: (layer, input shape) -> (output shape, params, torchvision MACs, receptive field),
including the worked examples of the course notes."""

from __future__ import annotations

import pytest

from tests.conftest import SpecFiles, layer

# (layer text, input shape, output shape, params, MACs, rf (size, stride, padding) of axis 1 or None)
CASES = [
    # the notes: 32x32x3, six 5x5 kernels -> 6 x 28 x 28, 456 params
    ("conv(6, 5)", "3 x 32 x 32", [6, 28, 28], 456, 6 * 28 * 28 * 75, (5, 1, 0)),
    # the notes: 5x5x3, two 3x3 kernels, stride 2, pad 1 -> 2 x 3 x 3
    ("conv(2, 3, stride=2, padding=1)", "3 x 5 x 5", [2, 3, 3], 56, 2 * 9 * 27, (3, 2, 1)),
    # the notes: 6x6, pad 1, 3x3 -> 6x6 ("same")
    ("conv(1, 3, padding=1)", "1 x 6 x 6", [1, 6, 6], 10, 36 * 9, (3, 1, 1)),
    ("conv(1, 3, padding=same)", "1 x 6 x 6", [1, 6, 6], 10, 36 * 9, (3, 1, 1)),
    # the notes: 7x7 input, 3x3 kernel: stride 1 -> 5, 2 -> 3, 3 -> 2 (floored)
    ("conv(1, 3)", "1 x 7 x 7", [1, 5, 5], 10, 25 * 9, (3, 1, 0)),
    ("conv(1, 3, stride=2)", "1 x 7 x 7", [1, 3, 3], 10, 9 * 9, (3, 2, 0)),
    ("conv(1, 3, stride=3)", "1 x 7 x 7", [1, 2, 2], 10, 4 * 9, (3, 3, 0)),
    # the notes' 83x83 ConvNet example
    ("conv(64, 9)", "3 x 83 x 83", [64, 75, 75], 64 * 3 * 81 + 64, 75 * 75 * 64 * 243, (9, 1, 0)),
    ("maxpool(10, stride=5)", "64 x 75 x 75", [64, 14, 14], 0, 0, (10, 5, 0)),
    ("conv(256, 9)", "64 x 14 x 14", [256, 6, 6], 256 * 64 * 81 + 256, 36 * 256 * 64 * 81, (9, 1, 0)),
    # the notes' locally connected layer: 200x200 image, 40K hidden units, 10x10 filters -> 4M params
    ("locally_connected(1, 10, padding=((4, 5), (4, 5)), bias=false)", "1 x 200 x 200", [1, 200, 200],
     4_000_000, 4_000_000, (10, 1, 4)),
    ("locally_connected(2, 3)", "1 x 5 x 5", [2, 3, 3], 9 * 2 * 9 + 9 * 2, 9 * 2 * 9, (3, 1, 0)),
    # stride, dilation, groups, depthwise, asymmetric padding, per-axis tuples, 1-D and 3-D
    ("conv(8, 3, dilation=2)", "4 x 9 x 9", [8, 5, 5], 8 * 4 * 9 + 8, 25 * 8 * 36, (5, 1, 0)),
    ("conv(8, 3, groups=2, bias=false)", "4 x 5 x 5", [8, 3, 3], 8 * 2 * 9, 9 * 8 * 18, (3, 1, 0)),
    ("conv(8, 3, groups=depthwise, padding=1)", "8 x 5 x 5", [8, 5, 5], 8 * 9 + 8, 25 * 8 * 9, (3, 1, 1)),
    ("conv(4, (3, 5), padding=((0, 1), (2, 2)))", "1 x 6 x 6", [4, 5, 6], 4 * 15 + 4, 30 * 4 * 15, (3, 1, 0)),
    ("conv(4, 3, stride=2, padding=same)", "1 x 8 x 8", [4, 4, 4], 40, 16 * 36, (3, 2, 0)),
    ("conv1d(4, 5, stride=3)", "2 x 20", [4, 6], 4 * 10 + 4, 6 * 40, (5, 3, 0)),
    ("conv3d(2, 3)", "1 x 4 x 5 x 6", [2, 2, 3, 4], 2 * 27 + 2, 24 * 54, (3, 1, 0)),
    ("conv(16, 1)", "8 x 4 x 4", [16, 4, 4], 16 * 8 + 16, 16 * 16 * 8, (1, 1, 0)),
    # transposed convolution: the notes' kernel 3, stride 2; the U-Net 2x2 up-convolution
    ("conv_transpose(1, 3, stride=2)", "1 x 4 x 4", [1, 9, 9], 10, 16 * 9, (2, "1/2", 1)),
    ("conv_transpose(32, 2, stride=2)", "64 x 28 x 28", [32, 56, 56], 64 * 32 * 4 + 32, 784 * 64 * 128,
     (1, "1/2", "1/4")),
    # pooling
    ("maxpool(2)", "3 x 9 x 9", [3, 4, 4], 0, 0, (2, 2, 0)),
    ("maxpool(2, ceil=true)", "3 x 9 x 9", [3, 5, 5], 0, 0, (2, 2, 0)),
    ("maxpool(3, stride=2, padding=1)", "3 x 112 x 112", [3, 56, 56], 0, 0, (3, 2, 1)),
    ("avgpool(3, stride=2, ceil=true)", "3 x 6 x 6", [3, 3, 3], 0, 0, (3, 2, 0)),
    ("global_avgpool", "64 x 7 x 7", [64, 1, 1], 0, 0, (7, 7, 0)),
    ("adaptive_avgpool(7)", "512 x 14 x 14", [512, 7, 7], 0, 0, (2, 2, 0)),
    ("adaptive_maxpool((2, 3))", "4 x 8 x 9", [4, 2, 3], 0, 0, (4, 4, 0)),
    # up-sampling: the notes' "duplicate" (nearest) and bilinear
    ("upsample(2)", "3 x 4 x 4", [3, 8, 8], 0, 0, (1, "1/2", "1/4")),
    ("upsample(2, mode=bilinear)", "3 x 4 x 4", [3, 8, 8], 0, 0, (2, "1/2", "3/4")),
    ("upsample(size=12, mode=linear)", "3 x 4", [3, 12], 0, 0, (2, "1/3", "5/6")),
    # pixel shuffle (sub-pixel up-sampling: a nearest up-sampling's window) and its inverse (space to depth)
    ("pixel_shuffle(2)", "8 x 3 x 4", [2, 6, 8], 0, 0, (1, "1/2", "1/4")),
    ("pixel_shuffle(3)", "18 x 2 x 2", [2, 6, 6], 0, 0, (1, "1/3", "1/3")),
    ("pixel_unshuffle(2)", "2 x 6 x 8", [8, 3, 4], 0, 0, (2, 2, 0)),
    # element-wise, normalisation, structure
    ("relu", "3 x 4 x 4", [3, 4, 4], 0, 0, (1, 1, 0)),
    ("leaky_relu(0.2)", "3 x 4", [3, 4], 0, 0, (1, 1, 0)),
    ("relu6", "3 x 4 x 4", [3, 4, 4], 0, 0, (1, 1, 0)),
    ("hardsigmoid", "3 x 4 x 4", [3, 4, 4], 0, 0, (1, 1, 0)),
    ("hardswish", "3 x 4", [3, 4], 0, 0, (1, 1, 0)),
    ("mish", "3 x 4 x 4", [3, 4, 4], 0, 0, (1, 1, 0)),
    ("elu(0.5)", "3 x 4 x 4", [3, 4, 4], 0, 0, (1, 1, 0)),
    ("softplus", "3 x 4 x 4", [3, 4, 4], 0, 0, (1, 1, 0)),
    ("softplus(2, threshold=1)", "3 x 4", [3, 4], 0, 0, (1, 1, 0)),  # the identity above x > 0.5
    ("prelu", "16 x 4 x 4", [16, 4, 4], 1, 0, (1, 1, 0)),
    ("prelu(per_channel=true, init=0.1)", "16 x 4 x 4", [16, 4, 4], 16, 0, (1, 1, 0)),
    ("prelu(per_channel=true)", "10", [10], 10, 0, None),
    ("gelu", "10", [10], 0, 0, None),
    ("softmax", "10", [10], 0, 0, None),
    ("dropout(0.3)", "3 x 4 x 4", [3, 4, 4], 0, 0, (1, 1, 0)),
    ("batchnorm", "16 x 4 x 4", [16, 4, 4], 32, 0, (1, 1, 0)),
    ("batchnorm(affine=false)", "16 x 4 x 4", [16, 4, 4], 0, 0, (1, 1, 0)),
    ("frozen_batchnorm", "16 x 4 x 4", [16, 4, 4], 0, 0, (1, 1, 0)),  # four buffers, no parameter
    ("groupnorm(4)", "16 x 4 x 4", [16, 4, 4], 32, 0, (1, 1, 0)),
    ("layernorm", "16 x 4 x 4", [16, 4, 4], 2 * 256, 0, (1, 1, 0)),
    ("layernorm(dims=1)", "16 x 4 x 4", [16, 4, 4], 8, 0, (1, 1, 0)),
    ("layernorm(over=channels, eps=1e-6)", "16 x 4 x 4", [16, 4, 4], 32, 0, (1, 1, 0)),  # ConvNeXt's
    ("instancenorm", "4 x 5 x 5", [4, 5, 5], 0, 0, (1, 1, 0)),
    ("instancenorm(affine=true)", "4 x 5", [4, 5], 8, 0, (1, 1, 0)),
    ("lrn(5)", "8 x 4 x 4", [8, 4, 4], 0, 0, (1, 1, 0)),  # AlexNet's
    ("lrn(4, alpha=0.001, beta=0.5, k=2.0)", "7 x 3", [7, 3], 0, 0, (1, 1, 0)),
    ("scale(init=0.5)", "8 x 4 x 4", [8, 4, 4], 8, 0, (1, 1, 0)),
    ("drop_path(0.2)", "8 x 4 x 4", [8, 4, 4], 0, 0, (1, 1, 0)),
    ("flatten", "16 x 4 x 4", [256], 0, 0, None),
    ("linear(10)", "60", [10], 610, 600, None),
    ("linear(10, bias=false)", "60", [10], 600, 600, None),
    ("linear(12, over=channels)", "8 x 5 x 5", [12, 5, 5], 108, 8 * 12 * 25, (1, 1, 0)),  # ConvNeXt's MLP
    ("crop(3)", "2 x 7 x 7", [2, 3, 3], 0, 0, (1, 1, -2)),
    ("identity", "2 x 7 x 7", [2, 7, 7], 0, 0, (1, 1, 0)),
    # channel splits (ShuffleNet, CSP, Darknet's grouped route) and a spatial slice (shifts like a crop)
    ("slice(0, 8)", "16 x 4 x 4", [8, 4, 4], 0, 0, (1, 1, 0)),
    ("slice(-8, -2)", "16 x 4 x 4", [6, 4, 4], 0, 0, (1, 1, 0)),
    ("slice(2, 6, dim=1)", "3 x 8 x 8", [3, 4, 8], 0, 0, (1, 1, -2)),
    ("slice(0, 5)", "10", [5], 0, 0, None),
    ("channel_shuffle(2)", "8 x 4 x 4", [8, 4, 4], 0, 0, (1, 1, 0)),
]


@pytest.mark.parametrize(("text", "shape", "out", "params", "macs", "rf"), CASES, ids=[c[0] for c in CASES])
def test_op_table(specs: SpecFiles, text: str, shape: str, out: list[int], params: int, macs: int,
                  rf: tuple[int, int | str, int | str] | None) -> None:
    network = specs.load(f"input x: {shape}\noutput y = x -> {text} as probe\n")
    entry = layer(network, "probe")
    assert (entry.shape, entry.params, entry.macs) == (out, params, macs)
    if rf is None:
        assert entry.rf is None
    else:
        assert entry.rf is not None
        assert (entry.rf.size[0], entry.rf.stride[0], entry.rf.padding[0]) == rf


@pytest.mark.parametrize(("text", "shape", "expected"), [
    ("[a, b] -> add", ("8 x 4 x 4", "8 x 4 x 4"), [8, 4, 4]),
    ("[a, b] -> concat", ("8 x 4 x 4", "3 x 4 x 4"), [11, 4, 4]),
    ("[a, b] -> concat(dim=2)", ("8 x 4 x 4", "8 x 4 x 2"), [8, 4, 6]),
    ("[a, b] -> crop", ("8 x 9 x 9", "3 x 5 x 5"), [8, 5, 5]),
    # numpy broadcasting of the per-sample shapes: a squeeze-excitation gate, a channel-shared map,
    # a lower-rank input aligned at the last axis
    ("[a, b] -> mul", ("8 x 4 x 4", "8 x 1 x 1"), [8, 4, 4]),
    ("[a, b] -> add", ("1 x 4 x 4", "8 x 1 x 1"), [8, 4, 4]),
    ("[a, b] -> mul", ("4 x 5", "8 x 1 x 5"), [8, 4, 5]),
    ("[a, b, a] -> mul", ("8 x 4 x 4", "8 x 4 x 4"), [8, 4, 4]),
])
def test_merge_ops(specs: SpecFiles, text: str, shape: tuple[str, str], expected: list[int]) -> None:
    network = specs.load(f"input a: {shape[0]}\ninput b: {shape[1]}\noutput y = {text} as probe\n")
    assert layer(network, "probe").shape == expected


def test_frozen_layers_are_not_trainable(specs: SpecFiles) -> None:
    network = specs.load("input x: 3 x 8 x 8\noutput y = x -> conv(8, 3, frozen=true) -> batchnorm -> relu\n")
    totals = network.report().totals
    assert (totals.params, totals.trainable_params) == (224 + 16, 16)
    assert totals.param_bytes == (224 + 16 + 16) * 4  # batch-norm running statistics are buffers


def test_batch_scales_macs_and_activations(specs: SpecFiles) -> None:
    network = specs.load("input x: 3 x 8 x 8\noutput y = x -> conv(8, 3) -> relu\n")
    one, eight = network.report(batch=1).totals, network.report(batch=8).totals
    assert (eight.macs, eight.activation_bytes) == (8 * one.macs, 8 * one.activation_bytes)
    assert one.activation_bytes == 2 * 8 * 6 * 6 * 4


@pytest.mark.parametrize(("text", "shape", "code", "fragment"), [
    ("pixel_shuffle(2)", "6 x 4 x 4", "E306", "`pixel_shuffle(2)` needs channels divisible by 2^2 = 4; got 6 x 4 x 4"),
    ("pixel_unshuffle(2)", "3 x 4 x 5", "E306", "axis 2 of 3 x 4 x 5 is 5"),
    ("pixel_shuffle(2)", "8 x 16", "E300", "`pixel_shuffle` supports 2 spatial axes; got 8 x 16"),
    ("pixel_unshuffle(2)", "8 x 4 x 4 x 4", "E300", "`pixel_unshuffle` supports 2 spatial axes"),
    ("slice(4, 2)", "8 x 4 x 4", "E306", "`slice(4, 2)` keeps nothing or runs past axis 0 of 8 x 4 x 4 (size 8)"),
    ("slice(0, 20)", "8 x 4 x 4", "E306", "runs past axis 0"),
    ("slice(0, 1, dim=3)", "8 x 4 x 4", "E205", "`slice` dim 3 is out of range for 8 x 4 x 4"),
    ("channel_shuffle(3)", "8 x 4 x 4", "E305", "channel_shuffle groups=3 must divide the 8 channels"),
    ("instancenorm", "4 x 1 x 1", "E306", "instancenorm on 4 x 1 x 1 normalises a single value per channel"),
    ("layernorm(dims=1, over=channels)", "4 x 2 x 2", "E205", "`dims` (trailing axes) or `over=channels`"),
    ("lrn(3)", "10", "E300", "`lrn` needs channels and at least 1 spatial axis"),
])
def test_op_errors(specs: SpecFiles, text: str, shape: str, code: str, fragment: str) -> None:
    [error] = specs.errors(f"input x: {shape}\noutput y = x -> {text}\n")
    assert error.code == code and fragment in error.message, error.headline()
    assert error.location is not None and (error.location.line, error.location.col) == (2, 17)


@pytest.mark.parametrize(("text", "shape", "code", "fragment"), [
    ("[a, b] -> mul", ("8 x 4 x 4", "3 x 1 x 1"), "E301", "`mul` needs equal channels; got 8 x 4 x 4 and 3 x 1 x 1"),
    ("[a, b] -> add", ("8 x 4 x 4", "8 x 3 x 4"), "E302",
     "`add` needs equal sizes along axis 1; got 8 x 4 x 4 and 8 x 3 x 4"),
    ("[a, b] -> mul", ("4 x 5", "8 x 4 x 4"), "E302", "`mul` needs equal sizes along axis 2; got 4 x 5 and 8 x 4 x 4"),
])
def test_shapes_that_do_not_broadcast(specs: SpecFiles, text: str, shape: tuple[str, str], code: str,
                                      fragment: str) -> None:
    [error] = specs.errors(f"input a: {shape[0]}\ninput b: {shape[1]}\noutput y = {text}\n")
    assert error.code == code and fragment in error.message, error.headline()
    assert error.location is not None and error.location.line == 3
