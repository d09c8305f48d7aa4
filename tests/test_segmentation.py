"""The segmentation specs (specs/fcn_resnet50.cnn, specs/deeplabv3_resnet50.cnn) against torchvision's own
models, with and without the auxiliary head: the same parameters, torchvision's state_dict loading strictly
into the compiled spec, and the same logits on a fixed input (dilated backbone, ASPP, the auxiliary head on
the backbone's layer3, up-sampling back to the input's size)."""

from __future__ import annotations

import pytest
import torch
import torchvision

import cnndsl
from tests.conftest import SPECS

# The published weights' counts (torchvision's weight tables, num_params): with the auxiliary head.
PUBLISHED = {"fcn_resnet50": 35_322_218, "deeplabv3_resnet50": 42_004_074}


def spec(name: str, aux_loss: bool) -> cnndsl.Network:
    """The bundled spec with its `aux_loss` constant set (`--set aux_loss=false` on the command line)."""
    return cnndsl.load(SPECS / f"{name}.cnn", inputs={"image": (3, 96, 128)}, constants={"aux_loss": aux_loss})


@pytest.mark.parametrize("aux_loss", [True, False], ids=["aux", "no_aux"])
@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_segmentation_specs_equal_torchvision(name: str, aux_loss: bool) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.get_model(name, weights_backbone=None, aux_loss=aux_loss).eval()
    network = spec(name, aux_loss)
    params = network.report().totals.params
    assert params == sum(p.numel() for p in reference.parameters())
    if aux_loss:
        assert params == PUBLISHED[name]
    module = network.to_torch()
    module.load_state_dict(reference.state_dict(), strict=True)
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        expected = reference(x)
        got = module(x)
    got = got if aux_loss else (got,)
    assert list(expected) == ["out", "aux"][:len(got)]
    for mine, theirs in zip(got, expected.values(), strict=True):
        assert mine.shape == theirs.shape == (2, 21, 96, 128)
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)
