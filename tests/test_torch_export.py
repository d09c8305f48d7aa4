"""Deployable artifacts: `cnndsl compile` writes torch.export programs and ONNX models that compute what
the live module computes, load without cnndsl, and keep a dynamic batch when asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from click.testing import CliRunner

import cnndsl
from cnndsl.backends.torch.export import ONNX_OPSET, example_inputs, save_onnx, save_program
from cnndsl.cli import main
from tests.conftest import ROOT, SPECS

runner = CliRunner()


def live_outputs(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    with torch.no_grad():
        out = module(*inputs)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def onnx_outputs(path: Path, network: cnndsl.Network, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {name: x.numpy() for name, x in zip(network.graph.inputs, inputs, strict=True)})


def program_outputs(path: Path, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    return live_outputs(torch.export.load(str(path)).module(), inputs)


@pytest.mark.parametrize("spec", [SPECS / "mnist1d.cnn", ROOT / "examples" / "two_inputs.cnn",
                                  ROOT / "examples" / "fcn_upsampling.cnn"], ids=lambda p: p.stem)
@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_dynamic_batch_artifacts_match_the_live_module(spec: Path, fmt: str, tmp_path: Path) -> None:
    network = cnndsl.load(spec)
    module = network.to_torch(seed=5)
    path = tmp_path / f"model.{fmt}"
    (save_onnx if fmt == "onnx" else save_program)(module, network.graph, path, dynamic_batch=True)
    for batch in (1, 3):
        inputs = example_inputs(network.graph, batch=batch, seed=batch)
        got = onnx_outputs(path, network, inputs) if fmt == "onnx" else program_outputs(path, inputs)
        for a, b in zip(got, live_outputs(module, inputs), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_static_artifact_is_specialised_to_its_batch(tmp_path: Path) -> None:
    network = cnndsl.load(SPECS / "mnist1d.cnn")
    save_onnx(network.to_torch(), network.graph, tmp_path / "m.onnx", batch=4)
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [4, 1, 40]
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= ONNX_OPSET >= 17


def test_cli_compiles_resnet18_to_onnx_with_weights(tmp_path: Path) -> None:
    network = cnndsl.load(SPECS / "resnet18.cnn")
    weights = network.to_torch(seed=11)
    torch.save(weights.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "build" / "resnet18.onnx"
    result = runner.invoke(main, ["compile", str(SPECS / "resnet18.cnn"), "--to", "torch", "-o", str(out),
                                  "--dynamic-batch", "--weights", str(tmp_path / "w.pt")])
    assert result.exit_code == 0, result.output
    assert "11,689,512 parameters" in result.stdout and "image: N x 3 x 224 x 224" in result.stdout
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    inputs = example_inputs(network.graph, batch=2)
    np.testing.assert_allclose(onnx_outputs(out, network, inputs)[0], live_outputs(weights, inputs)[0],
                               rtol=1e-4, atol=1e-4)


def test_exported_program_loads_and_runs_without_cnndsl(tmp_path: Path) -> None:
    out = tmp_path / "lenet5.pt2"
    result = runner.invoke(main, ["compile", str(SPECS / "lenet5.cnn"), "-o", str(out), "--batch", "2"])
    assert result.exit_code == 0, result.output
    script = (
        "import sys\n"
        "class NoCnndsl:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'cnndsl': raise ImportError('cnndsl is not installed here')\n"
        "sys.meta_path.insert(0, NoCnndsl())\n"
        "import torch\n"
        f"program = torch.export.load({str(out)!r})\n"
        "print(tuple(program.module()(torch.randn(2, 1, 32, 32)).shape))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(2, 10)"


@pytest.mark.parametrize("fold_bn", [False, True])
def test_onnx_nodes_carry_the_spec_names_and_batch_norm_stays_unless_folded(fold_bn: bool, tmp_path: Path) -> None:
    network = cnndsl.load(ROOT / "specs" / "resnet18.cnn", inputs={"image": (3, 32, 32)})
    network.export(tmp_path / "r.onnx", batch=2, fold_bn=fold_bn)
    model = onnx.load(str(tmp_path / "r.onnx"))
    names = [node.name for node in model.graph.node]
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("BatchNormalization") == (0 if fold_bn else 20)
    assert names[:4] == (["conv1+bn1", "relu1", "maxpool", "layer1.0.conv1+layer1.0.bn1"] if fold_bn else
                         ["conv1", "bn1", "relu1", "maxpool"])
    downsample = "layer2.0.downsample.0+layer2.0.downsample.1" if fold_bn else "layer2.0.downsample.0"
    assert {downsample, "layer4.1.add1", "fc"} <= set(names) and len(set(names)) == len(names)
    session = onnxruntime.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"])
    (x,) = example_inputs(network.graph, batch=2)
    np.testing.assert_allclose(session.run(None, {"image": x.numpy()})[0],
                               network.to_torch()(x).detach().numpy(), atol=1e-4)


@pytest.mark.parametrize(("args", "code", "message"), [
    (["-o", "x.onnx", "--format", "pt2"], 2, "--format pt2 but the output x.onnx ends in .onnx"),
    (["-o", "x.pt2", "--fold-bn"], 2, "--fold-bn applies to ONNX"),
    (["--weights", "missing.pt"], 2, "weights file missing.pt: no such file"),
    (["--to", "caffe"], 2, "Invalid value for '--to'"),
])
def test_cli_usage_errors(args: list[str], code: int, message: str, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["compile", str(SPECS / "mnist1d.cnn"), *args])
    assert result.exit_code == code and message in result.output


def test_cli_reports_spec_errors_before_lowering(tmp_path: Path) -> None:
    spec = tmp_path / "bad.cnn"
    spec.write_text("input x: 3 x 8 x 8\noutput y = x -> conv(4, 9)\n")
    result = runner.invoke(main, ["compile", str(spec), "-o", str(tmp_path / "bad.pt2")])
    assert result.exit_code == 1 and "error[E303]" in result.stderr
    assert not (tmp_path / "bad.pt2").exists()
