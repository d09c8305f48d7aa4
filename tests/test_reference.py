"""The bundled specs against the published figures of ../shared/REFERENCE.md, exactly."""

from __future__ import annotations

import pytest

import cnndsl
from tests.conftest import SPECS, layer

# spec -> (params, torchvision MACs, output shape)
NETWORKS = {
    "mnist1d": (2_050, 10_230, [10]),
    "lenet5": (61_706, 416_520, [10]),
    "vgg16": (138_357_544, 15_470_264_320, [1000]),
    "resnet18": (11_689_512, 1_814_073_344, [1000]),
    "resnet50": (25_557_032, 4_089_184_256, [1000]),
    "resnet152": (60_192_808, 11_513_626_624, [1000]),
    "unet": (31_030_658, None, [2, 388, 388]),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_params_macs_and_output(name: str) -> None:
    params, macs, shape = NETWORKS[name]
    network = cnndsl.load(SPECS / f"{name}.cnn")
    report = network.report()
    assert not [d for d in network.diagnostics if d.is_error]
    assert report.totals.params == params
    assert report.totals.trainable_params == params
    if macs is not None:
        assert report.totals.macs == macs
    assert list(report.outputs.values()) == [shape]


@pytest.mark.parametrize(("name", "batch", "expected"), [
    ("mnist1d", 100, 1_072_000),  # the notes' torchinfo table: 1.07 M Mult-Adds at batch 100
    ("resnet50", 1, 4_089_238_376),
    ("resnet152", 1, 11_513_779_048),
])
def test_torchinfo_convention(name: str, batch: int, expected: int) -> None:
    assert cnndsl.load(SPECS / f"{name}.cnn").report("torchinfo", batch).totals.macs == expected


def test_darknet_convention_counts_convolutions_only() -> None:
    report = cnndsl.load(SPECS / "resnet18.cnn").report("darknet")
    assert report.totals.macs == 1_814_073_344 - 512 * 1000  # the linear layer is not a convolution


def test_mnist1d_per_layer_table() -> None:
    network = cnndsl.load(SPECS / "mnist1d.cnn")
    rows = [(entry.op, entry.shape, entry.params) for entry in network.report().layers if entry.params]
    assert rows == [("conv1d", [15, 19], 60), ("conv1d", [15, 9], 690), ("conv1d", [15, 4], 690), ("linear", [10], 610)]
    assert [entry.macs for entry in network.report().layers if entry.macs] == [855, 6_075, 2_700, 600]


@pytest.mark.parametrize(("point", "expected"), [
    ("stage1.pool", (6, 2, 2)), ("stage2.pool", (16, 4, 6)), ("stage3.pool", (44, 8, 18)),
    ("stage4.pool", (100, 16, 42)), ("stage5.pool", (212, 32, 90)),
])
def test_vgg16_receptive_fields(point: str, expected: tuple[int, int, int]) -> None:
    rf = layer(cnndsl.load(SPECS / "vgg16.cnn"), point).rf
    assert rf is not None
    assert (rf.size, rf.stride, rf.padding) == ([expected[0]] * 2, [expected[1]] * 2, [expected[2]] * 2)


@pytest.mark.parametrize(("point", "expected"), [
    ("resnet50.layer1.blocks.1.relu3", (35, 4, 17)), ("resnet50.layer2.blocks.2.relu3", (91, 8, 45)),
    ("resnet50.layer3.blocks.4.relu3", (267, 16, 133)), ("resnet50.layer4.blocks.1.relu3", (427, 32, 213)),
])
def test_resnet50_receptive_fields(point: str, expected: tuple[int, int, int]) -> None:
    rf = layer(cnndsl.load(SPECS / "resnet50.cnn"), point).rf
    assert rf is not None
    assert (rf.size[0], rf.stride[0], rf.padding[0]) == expected


def test_unet_sizes_and_skip_crops() -> None:
    network = cnndsl.load(SPECS / "unet.cnn")
    shapes = {entry.name: entry.shape for entry in network.report().layers}
    encoder = [shapes[f"double_conv{i}.relu2"][1] for i in range(1, 6)]
    decoder = [shapes[f"up{i}.convs.relu2"][1] for i in range(1, 5)]
    crops = [shapes[f"up{i}.crop1"][1] for i in range(1, 5)]
    assert encoder == [568, 280, 136, 64, 28]
    assert decoder == [52, 100, 196, 388]
    assert crops == [56, 104, 200, 392]
    assert not [d for d in network.diagnostics if d.code == "W103"]  # crops keep the skips aligned
