"""The segmentation specs (specs/fcn_resnet50.cnn, specs/deeplabv3_resnet50.cnn) against torchvision's own
models: the same parameters, torchvision's state_dict loading strictly into the compiled spec, and the same
logits on a fixed input (dilated backbone, ASPP, up-sampling back to the input's size)."""

from __future__ import annotations

import pytest
import torch
import torchvision

import cnndsl
from tests.conftest import SPECS


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_segmentation_specs_equal_torchvision(name: str) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.get_model(name, weights_backbone=None, aux_loss=False).eval()
    network = cnndsl.load(SPECS / f"{name}.cnn", inputs={"image": (3, 96, 128)})
    assert network.report().totals.params == sum(p.numel() for p in reference.parameters())
    module = network.to_torch()
    module.load_state_dict(reference.state_dict(), strict=True)
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        expected = reference(x)["out"]
        got = module(x)
    assert got.shape == expected.shape == (2, 21, 96, 128)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
