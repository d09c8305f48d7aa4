"""The torchinfo convention against torchinfo itself: the same networks written by hand in PyTorch,
summarised by torchinfo (a real forward pass), give the same Mult-Adds and parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchinfo import summary

import cnndsl
from tests.conftest import SPECS, SpecFiles

MIXED = """input x: 3 x 32 x 32
output y = x
    -> conv(16, 3, padding=1, bias=false) -> batchnorm -> relu -> maxpool(2)
    -> conv(32, 3, stride=2, groups=4) -> groupnorm(8) -> relu
    -> conv_transpose(8, 4, stride=2, padding=1) -> layernorm(dims=2)
    -> conv(4, 1) -> global_avgpool -> flatten -> linear(10)
"""


def mixed_module() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, stride=2, groups=4), nn.GroupNorm(8, 32), nn.ReLU(),
        nn.ConvTranspose2d(32, 8, 4, stride=2, padding=1), nn.LayerNorm([14, 14]),
        nn.Conv2d(8, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def mnist1d_module() -> nn.Module:
    return nn.Sequential(nn.Conv1d(1, 15, 3, 2), nn.ReLU(), nn.Conv1d(15, 15, 3, 2), nn.ReLU(),
                         nn.Conv1d(15, 15, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(60, 10))


@pytest.mark.parametrize("batch", [1, 7])
def test_torchinfo_mult_adds_and_params(specs: SpecFiles, batch: int) -> None:
    cases = [(specs.load(MIXED), mixed_module(), (3, 32, 32)),
             (cnndsl.load(SPECS / "mnist1d.cnn"), mnist1d_module(), (1, 40))]
    for network, module, shape in cases:
        stats = summary(module, input_size=(batch, *shape), verbose=0)
        report = network.report("torchinfo", batch)
        assert report.totals.macs == stats.total_mult_adds
        assert report.totals.params == stats.total_params
        with torch.no_grad():
            assert list(module(torch.zeros(1, *shape)).shape[1:]) == list(report.outputs.values())[0]


def test_torchinfo_shows_every_block_instance_with_its_shape_at_any_depth() -> None:
    """Block instances are modules with forwards: torchinfo's depth=2 table shows each stage and block
    with its output shape and parameters, as for torchvision's ResNet-18."""
    from tests.conftest import ROOT
    from tests.reference_nets import ResNet18

    network = cnndsl.load(ROOT / "specs" / "resnet18.cnn", inputs={"image": (3, 64, 64)})
    ours = summary(network.to_torch(), input_size=(1, 3, 64, 64), depth=2, verbose=0)
    theirs = summary(ResNet18(), input_size=(1, 3, 64, 64), depth=2, verbose=0)

    def rows(info: object) -> list[tuple[str, list[int], int]]:
        return [(layer.var_name, layer.output_size, layer.num_params) for layer in info.summary_list  # type: ignore[attr-defined]
                if layer.depth <= 2 and layer.num_params]

    assert [row for row in rows(ours) if row[0].startswith("layer")] == \
        [row for row in rows(theirs) if row[0].startswith("layer")]
    assert ("layer3", [1, 256, 4, 4], 2_099_712) in rows(ours)
    assert ours.total_params == theirs.total_params and ours.total_mult_adds == theirs.total_mult_adds
