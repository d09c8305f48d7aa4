"""Detection's building blocks against torchvision's own: frozen batch norm (torchvision.ops.FrozenBatchNorm2d),
the ResNet-50-FPN backbone of its Faster and Mask R-CNN (specs/resnet50_fpn.cnn over specs/lib/fpn.cnn: the
same parameters, torchvision's state_dict loading strictly, the same five pyramid levels) and RoIAlign
(torchvision.ops.roi_align, per sample, in PyTorch and TVM)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

import cnndsl
from tests.conftest import SPECS, SpecFiles


def test_frozen_batchnorm_is_torchvisions() -> None:
    theirs = torchvision.ops.FrozenBatchNorm2d(6, eps=1e-3)
    generator = torch.Generator().manual_seed(0)
    state = {name: torch.rand(6, generator=generator) + 0.5 for name in theirs.state_dict()}
    theirs.load_state_dict(state)
    network = cnndsl.loads("input x: 6 x 5 x 7\noutput y = x -> frozen_batchnorm(eps=0.001) as bn\n")
    assert network.report().totals.params == 0
    mine = network.to_torch()
    # a batch norm checkpoint loads as into torchvision's: num_batches_tracked is dropped
    mine.load_state_dict({**{f"bn.{name}": value for name, value in state.items()},
                          "bn.num_batches_tracked": torch.tensor(3)}, strict=True)
    assert set(mine.state_dict()) == {f"bn.{name}" for name in state}
    x = torch.randn(2, 6, 5, 7)
    torch.testing.assert_close(mine(x), theirs(x), rtol=0, atol=0)


def test_frozen_batchnorm_counts_buffers_not_parameters(specs: SpecFiles) -> None:
    network = specs.load("input x: 3 x 8 x 8\noutput y = x -> conv(4, 3, bias=false) -> frozen_batchnorm\n")
    report = network.report()
    assert report.totals.params == 4 * 3 * 9
    assert report.totals.param_bytes == (4 * 3 * 9 + 4 * 4) * 4


def test_resnet50_fpn_equals_torchvisions_backbone() -> None:
    torch.manual_seed(0)
    reference = resnet_fpn_backbone(backbone_name="resnet50", weights=None).eval()
    with torch.no_grad():  # frozen batch norm starts as the identity: give it statistics to compute with
        for module in reference.modules():
            if isinstance(module, torchvision.ops.FrozenBatchNorm2d):
                for buffer in (module.weight, module.bias, module.running_mean):
                    buffer.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    network = cnndsl.load(SPECS / "resnet50_fpn.cnn", inputs={"image": (3, 128, 160)})
    assert network.report().totals.params == sum(p.numel() for p in reference.parameters()) == 26_799_296
    module = network.to_torch()
    module.load_state_dict({f"backbone.{key}": value for key, value in reference.state_dict().items()}, strict=True)
    x = torch.rand(2, 3, 128, 160)
    with torch.no_grad():
        expected = list(reference(x).values())
        got = module(x)
    assert [tuple(t.shape[1:]) for t in got] == [(256, 32, 40), (256, 16, 20), (256, 8, 10), (256, 4, 5),
                                                (256, 2, 3)]
    for mine, theirs in zip(got, expected, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-4)


ROI_SPEC = """\
input image: 3 x 64 x 64
input boxes: 8 x 4
features = image -> conv(16, 3, stride=4, padding=1) as stem -> relu
output pooled = [features, boxes] -> roi_align(7, 0.25, 2) as pool
"""


def roi_boxes(batch: int, count: int) -> torch.Tensor:
    """Boxes inside a 64 x 64 image, some past its edge (x1, y1, x2, y2)."""
    generator = torch.Generator().manual_seed(0)
    corner = torch.rand(batch, count, 2, generator=generator) * 56
    return torch.cat([corner, corner + torch.rand(batch, count, 2, generator=generator) * 30 + 1], dim=-1)


def test_roi_align_is_torchvisions_per_sample() -> None:
    network = cnndsl.loads(ROI_SPEC)
    assert network.report().layers[-1].shape == [8, 16, 7, 7]
    module = network.to_torch(seed=0).eval()
    x, boxes = torch.rand(2, 3, 64, 64), roi_boxes(2, 8)
    with torch.no_grad():
        got = module(x, boxes)
        expected = torchvision.ops.roi_align(module.relu1(module.stem(x)), list(boxes), 7, 0.25, 2)
    assert got.shape == (2, 8, 16, 7, 7)
    torch.testing.assert_close(got.reshape(16, 16, 7, 7), expected, rtol=0, atol=0)


@pytest.mark.parametrize(("chain", "fragment"), [
    ("[boxes, features] -> roi_align(7)", "pools a C x H x W feature map; got 8 x 4"),
    ("[features, image] -> roi_align(7)", "reads boxes as K x 4 (x1, y1, x2, y2) per sample; got 3 x 64 x 64"),
    ("[features, boxes] -> roi_align(7, 0)", "spatial_scale"),
])
def test_roi_align_mistakes_are_located(specs: SpecFiles, chain: str, fragment: str) -> None:
    errors = specs.errors(ROI_SPEC.replace("[features, boxes] -> roi_align(7, 0.25, 2) as pool", chain))
    assert len(errors) == 1 and fragment in errors[0].message, [e.headline() for e in errors]
    assert errors[0].location is not None and errors[0].location.line == 4


@pytest.mark.tvm
def test_roi_align_compiles_with_tvm_to_what_pytorch_computes(tmp_path: Path) -> None:
    import cnndsl.runtime

    network = cnndsl.loads(ROI_SPEC)
    x, boxes = torch.rand(2, 3, 64, 64), roi_boxes(2, 8)
    with torch.no_grad():
        expected = network.to_torch(seed=0).eval()(x, boxes).numpy()
    network.to_tvm(path=tmp_path / "roi", batch=2, seed=0)
    got = cnndsl.runtime.load(tmp_path / "roi")(x.numpy(), boxes.numpy())
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_frozen_batchnorm_imports_from_pytorch() -> None:
    from cnndsl.api import import_torch

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torchvision.ops.FrozenBatchNorm2d(8),
                                torch.nn.ReLU()).eval()
    with torch.no_grad():
        model[1].running_var.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-1, 1)
    imported = import_torch(model, inputs={"x": (3, 16, 16)}, name="trunk")  # verified against the model
    assert "frozen_batchnorm" in imported.text and imported.network.report().totals.params == 8 * 3 * 9
