"""The bundled specs against their published figures (the sources named in tools/fidelity.py), exactly."""

from __future__ import annotations

import pytest

import cnndsl
from tests.conftest import SPECS
from tools.fidelity import FIGURES, Figure, matches, measure, network


@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f"{f.network}:{f.quantity}")
def test_fidelity_table(figure: Figure) -> None:
    """Every row of docs/fidelity.md: our figure equals the published one (at its precision)."""
    assert matches(measure(figure.network, figure.quantity), figure.published)


def test_every_spec_is_in_the_fidelity_table_and_checks_cleanly() -> None:
    specs = {p.stem for p in SPECS.glob("*.cnn")}
    assert specs == {f.network for f in FIGURES}
    for name in specs:
        assert not [d for d in network(name).diagnostics if d.is_error]


def test_the_issue_s_network_list_is_bundled() -> None:
    wanted = ["lenet5", "alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
              "vgg19_bn", "googlenet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "yolov1",
              "fcn32s", "unet", "mnist1d", "convnet83"]
    assert all((SPECS / f"{name}.cnn").exists() for name in wanted)


def test_darknet_convention_counts_convolutions_only() -> None:
    report = cnndsl.load(SPECS / "resnet18.cnn").report("darknet")
    assert report.totals.macs == 1_814_073_344 - 512 * 1000  # the linear layer is not a convolution


def test_mnist1d_per_layer_table() -> None:
    network = cnndsl.load(SPECS / "mnist1d.cnn")
    rows = [(entry.op, entry.shape, entry.params) for entry in network.report().layers if entry.params]
    assert rows == [("conv1d", [15, 19], 60), ("conv1d", [15, 9], 690), ("conv1d", [15, 4], 690), ("linear", [10], 610)]
    assert [entry.macs for entry in network.report().layers if entry.macs] == [855, 6_075, 2_700, 600]


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
