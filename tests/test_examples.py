"""Every example checks cleanly, and its figures are the ones its comments promise."""

from __future__ import annotations

from pathlib import Path

import pytest

import cnndsl
from tests.conftest import ROOT, layer

EXAMPLES = sorted((ROOT / "examples").rglob("*.cnn"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_checks_without_errors(path: Path) -> None:
    network = cnndsl.load(path)
    assert not [d for d in network.diagnostics if d.is_error]
    assert network.report().outputs


def test_inception_module_matches_torchvision() -> None:
    report = cnndsl.load(ROOT / "examples" / "inception.cnn").report()
    assert report.outputs == {"mixed": [256, 28, 28]} and report.totals.params == 155_872


def test_convnet83_sizes_from_the_notes() -> None:
    report = cnndsl.load(ROOT / "specs" / "convnet83.cnn").report()
    assert [entry.shape for entry in report.layers if entry.op in ("conv2d", "maxpool2d")] == [
        [64, 75, 75], [64, 14, 14], [256, 6, 6]]


def test_locally_connected_has_four_million_parameters() -> None:
    network = cnndsl.load(ROOT / "examples" / "locally_connected_faces.cnn")
    assert layer(network, "local").params == 4_000_000 and layer(network, "conv").params == 100


def test_fcn_upsamples_back_to_the_input_with_a_fractional_stride() -> None:
    upscore = layer(cnndsl.load(ROOT / "examples" / "fcn_upsampling.cnn"), "upscore")
    assert upscore.shape == [21, 224, 224]
    assert upscore.rf is not None and upscore.rf.stride == [1, 1]
