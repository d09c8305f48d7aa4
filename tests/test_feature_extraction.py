"""Feature extraction: a compiled module returning intermediate tensors (torchvision's
create_feature_extractor), `compile --outputs` artifacts, and `check --taps` reporting what they hold."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import cnndsl
from cnndsl.backends.torch.export import example_inputs
from cnndsl.cli import main
from tests.conftest import ROOT

RESNET18 = ROOT / "specs" / "resnet18.cnn"
SMALL = {"image": (3, 64, 64)}
# A layer inside a block instance, a block instance, a repeat, an input and an output.
TAPS = ["layer2.0.bn1", "layer3.1", "layer4", "image", "logits"]


def hooked(module: torch.nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each named submodule's output, seen by a forward hook during a full forward."""
    seen: dict[str, torch.Tensor] = {}
    for name in names:
        module.get_submodule(name).register_forward_hook(
            lambda _, args, out, name=name: seen.__setitem__(name, out.clone()))
    with torch.no_grad():
        seen["logits"] = module(x)
    return seen


def test_feature_extraction_returns_the_hooked_intermediates_and_runs_only_what_they_need() -> None:
    network = cnndsl.load(RESNET18, inputs=SMALL)
    full = network.to_torch(seed=3)
    features = network.to_torch(seed=3, outputs=TAPS)
    assert list(features.state_dict()) == list(full.state_dict())  # a checkpoint of the network loads into it
    (x,) = example_inputs(network.graph, batch=2)
    expected = hooked(full, TAPS[:3], x)
    with torch.no_grad():
        got = features(x)
    assert list(got) == TAPS
    for name in TAPS[:3] + ["logits"]:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)
    assert torch.equal(got["image"], x)

    early = network.to_torch(outputs=["layer2"])
    called = {name for name, _ in early.named_modules() if name}
    ran: set[str] = set()
    for name in called:
        early.get_submodule(name).register_forward_hook(lambda *_, name=name: ran.add(name))
    with torch.no_grad():
        early(x)
    assert "layer2" in ran and not any(name.startswith(("layer3", "layer4", "fc")) for name in ran)


def test_an_unknown_tap_is_a_usage_error_with_the_nearest_names() -> None:
    network = cnndsl.load(RESNET18)
    with pytest.raises(cnndsl.UsageError, match="did you mean `layer2`"):
        network.to_torch(outputs=["layr2"])
    result = CliRunner().invoke(main, ["check", str(RESNET18), "--taps", "layer2,layr3"])
    assert result.exit_code == 2 and "`layr3` names no layer" in result.output
    result = CliRunner().invoke(main, ["compile", str(RESNET18), "--outputs", "layer2,,layer3"])
    assert result.exit_code == 2 and "expected names separated by commas" in result.output


def test_taps_report_the_numbers_of_the_layers_they_name() -> None:
    result = CliRunner().invoke(main, ["check", str(RESNET18), "--json", "--taps", "layer2,layer3,layer4,image"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    jsonschema.validate(report, json.loads((ROOT / "docs" / "report.schema.json").read_text()))
    rows = {layer["name"]: layer for layer in report["layers"]}
    taps = {tap["name"]: tap for tap in report["taps"]}
    assert [(taps[n]["layer"], taps[n]["channels"], taps[n]["rf"]["stride"]) for n in ("layer2", "layer3", "layer4")] \
        == [("layer2.1.relu2", 128, [8, 8]), ("layer3.1.relu2", 256, [16, 16]), ("layer4.1.relu2", 512, [32, 32])]
    for name in ("layer2", "layer3", "layer4"):
        row = rows[taps[name]["layer"]]
        assert (taps[name]["shape"], taps[name]["rf"]) == (row["shape"], row["rf"])
    assert taps["image"]["rf"] == {"size": [1, 1], "stride": [1, 1], "padding": [0, 0]}
    text = CliRunner().invoke(main, ["check", str(RESNET18), "--taps", "layer3"]).output
    assert "Taps:" in text and "layer3.1.relu2   256 x 14 x 14   256        16       211       105" in text


def test_compile_outputs_writes_an_onnx_model_returning_the_taps(tmp_path: Path) -> None:
    import onnxruntime

    out = tmp_path / "features.onnx"
    result = CliRunner().invoke(main, ["compile", str(RESNET18), "--input", "image=3x64x64", "--outputs",
                                       "layer2,layer3", "-o", str(out), "--dynamic-batch"])
    assert result.exit_code == 0, result.output
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["layer2", "layer3"]
    network = cnndsl.load(RESNET18, inputs=SMALL)
    (x,) = example_inputs(network.graph, batch=3)
    expected = network.to_torch(outputs=["layer2", "layer3"])(x)
    for got, name in zip(session.run(None, {"image": x.numpy()}), ("layer2", "layer3"), strict=True):
        np.testing.assert_allclose(got, expected[name].detach().numpy(), atol=1e-4)


@pytest.mark.tvm
def test_a_tvm_artifact_returns_the_taps(tmp_path: Path) -> None:
    network = cnndsl.load(ROOT / "specs" / "lenet5.cnn")
    taps = ["s2", "c3"]
    compiled = network.tapped(taps).to_tvm("llvm", tmp_path / "artifact", batch=2)
    model = compiled.load()
    assert list(model.outputs) == taps
    (x,) = example_inputs(network.graph, batch=2)
    expected = network.to_torch(outputs=taps)(x)
    for got, name in zip(model(x.numpy()), taps, strict=True):
        np.testing.assert_allclose(got, expected[name].detach().numpy(), atol=1e-5)
