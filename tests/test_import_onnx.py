"""`cnndsl import onnx`: the bundled specs exported to ONNX by cnndsl and imported back give the same
report; torchvision models exported by torch.onnx import with their initializers' count, and every import
is verified against onnxruntime (the initializers loaded into the compiled spec, outputs compared); weights
computed in the graph (ConstantOfShape) fold; bad files are located errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torchvision
from click.testing import CliRunner
from onnx import TensorProto, helper

import cnndsl
from cnndsl.api import import_onnx
from cnndsl.cli import main
from cnndsl.diagnostics import SpecError
from cnndsl.syntax.fmt import format_text
from tests.conftest import SPECS

ROUND_TRIP = ["lenet5", "mnist1d", "resnet18", "mobilenet_v2", "squeezenet1_1", "shufflenet_v2_x1_0", "alexnet",
              "vgg11_bn", "mobilenet_v3_small"]


def same_report(a: cnndsl.Network, b: cnndsl.Network) -> None:
    ta, tb = a.report().totals, b.report().totals
    assert (ta.params, ta.macs) == (tb.params, tb.macs)
    assert list(a.report().outputs.values()) == list(b.report().outputs.values())


@pytest.mark.parametrize("spec", ROUND_TRIP)
def test_a_bundled_spec_exported_to_onnx_imports_back_to_the_same_report(spec: str, tmp_path: Path) -> None:
    network = cnndsl.load(SPECS / f"{spec}.cnn")
    path = tmp_path / f"{spec}.onnx"
    network.export(path)
    imported = import_onnx(path, name=spec)
    same_report(network, imported.network)
    assert imported.max_difference is not None and imported.max_difference <= 1e-5
    assert format_text(imported.text, f"{spec}.cnn") == imported.text


# ConvNeXt's channel layer norm exports as transpose, LayerNormalization over the last axis, transpose:
# refused (E703), the one bundled spec that does not come back; the others come back with the same counts
# (all 35 checked by hand on 2026-12-05, docs/import.md); the slow tier takes one of each family
EVERY_SPEC = ["convnet83", "densenet121", "efficientnet_v2_s", "googlenet", "resnet50", "unet", "yolov1"]


@pytest.mark.slow
@pytest.mark.parametrize("spec", EVERY_SPEC)
def test_every_bundled_spec_comes_back_from_onnx(spec: str, tmp_path: Path) -> None:
    test_a_bundled_spec_exported_to_onnx_imports_back_to_the_same_report(spec, tmp_path)


def test_torch_onnx_module_paths_become_blocks(tmp_path: Path) -> None:
    """cnndsl's own export records each layer's module path: the import writes ResNet-18's blocks again."""
    path = tmp_path / "resnet18.onnx"
    cnndsl.load(SPECS / "resnet18.cnn").export(path)
    imported = import_onnx(path, name="resnet18")
    assert not imported.notes and "x 2 as layer1" in imported.text
    names = {layer.name for layer in imported.network.report().layers}
    assert {"layer1.0.conv1", "layer2.0.downsample.0", "fc"} <= names


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5"])
def test_torchvision_models_exported_by_torch_onnx_import_with_their_counts(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model(name).eval()
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model, (torch.rand(1, 3, 64, 64),), str(path), dynamo=True, verbose=False)
    imported = import_onnx(path, name=name)
    weights = sum(int(np.prod(init.dims)) for init in onnx.load(str(path)).graph.initializer
                  if init.data_type == TensorProto.FLOAT)
    running = sum(2 * layer.shape[0] for layer in imported.network.report().layers
                  if layer.op.startswith("batchnorm"))  # mean and variance: buffers, not parameters
    assert imported.network.report().totals.params == weights - running
    assert imported.max_difference is not None and imported.max_difference <= 1e-5
    assert "layer1.0.conv1" in {layer.name for layer in imported.network.report().layers} or name != "resnet18"


def constant_of_shape_model(path: Path) -> None:
    """A convolution whose weight is made in the graph: Shape of a constant, ConstantOfShape, then Mul."""
    shape = helper.make_tensor("wshape", TensorProto.INT64, [4], [4, 3, 3, 3])
    nodes = [
        helper.make_node("ConstantOfShape", ["wshape"], ["ones"],
                         value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("Mul", ["ones", "half"], ["w"]),
        helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["y"], ["out"]),
    ]
    half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 4, 8, 8])],
                              [shape, half])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_weights_made_by_constant_of_shape_fold_into_the_layer(tmp_path: Path) -> None:
    path = tmp_path / "cos.onnx"
    constant_of_shape_model(path)
    imported = import_onnx(path)
    layers = imported.network.report().layers
    assert [layer.op for layer in layers] == ["conv2d", "relu"] and layers[0].shape == [4, 8, 8]
    assert imported.network.report().totals.params == 108
    assert imported.max_difference is not None and imported.max_difference <= 1e-5


def unsupported_model(path: Path) -> None:
    nodes = [helper.make_node("Sin", ["x"], ["out"], name="the_sine")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_bad_models_are_located_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.onnx"
    constant_of_shape_model(good)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(bytes(range(256)) * 8)
    unsupported = tmp_path / "sine.onnx"
    unsupported_model(unsupported)
    cases = [(truncated, {}, "E705", "not a valid ONNX model"), (garbage, {}, "E705", "not a valid ONNX model"),
             (unsupported, {}, "E703", "node the_sine (Sin)")]
    for path, inputs, code, text in cases:
        with pytest.raises(SpecError) as info:
            import_onnx(path, inputs=inputs or None)
        error = info.value.diagnostics[0]
        assert (error.code, error.location.file if error.location else None) == (code, str(path))
        assert text in error.message and error.hint


def test_a_symbolic_input_needs_its_shape(tmp_path: Path) -> None:
    path = tmp_path / "symbolic.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["out"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 3, "h", "w"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(SpecError) as info:
        import_onnx(path)
    assert info.value.diagnostics[0].code == "E705" and "--input x=" in (info.value.diagnostics[0].hint or "")
    imported = import_onnx(path, inputs={"x": (3, 16, 16)})
    assert list(imported.network.report().outputs.values()) == [[3, 16, 16]]


def test_the_command(tmp_path: Path) -> None:
    model = tmp_path / "cos.onnx"
    constant_of_shape_model(model)
    out = tmp_path / "cos.cnn"
    result = CliRunner().invoke(main, ["import", "onnx", str(model), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "108 parameters (ONNX initializers: 108)" in result.output and "verified" in result.output
    assert cnndsl.load(out).report().totals.params == 108
    missing = CliRunner().invoke(main, ["import", "onnx", str(tmp_path / "missing.onnx")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_hostile_graphs_end_in_located_errors_within_bounds(tmp_path: Path) -> None:
    """An initializer whose dims claim 10^12 floats (with 4 bytes of data) fails ONNX's checker before it is
    read, as does a graph with a cycle; a chain of 20,000 ReLUs passes the checker but not the layer limit."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 8, 8])
    huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1_000_000, 1_000_000, 1, 1],
                       raw_data=bytes(4))
    huge_model = tmp_path / "huge.onnx"
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["out"])], "g", [x], [out], [huge])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(huge_model))
    cycle = tmp_path / "cycle.onnx"
    nodes = [helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Add", ["x", "b"], ["out"])]
    graph = helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(cycle))
    long = tmp_path / "long.onnx"
    names = ["x", *(f"r{i}" for i in range(20_000))]
    nodes = [helper.make_node("Relu", [a], [b]) for a, b in zip(names, names[1:], strict=False)]
    graph = helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info(names[-1], TensorProto.FLOAT,
                                                                              [1, 3, 8, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(long))
    for path, code, text in [(huge_model, "E705", "too small for the declared shape"),
                             (cycle, "E705", "not a valid ONNX model"),
                             (long, "E210", "20,000 layers")]:
        with pytest.raises(SpecError) as info:
            import_onnx(path)
        error = info.value.diagnostics[0]
        assert error.code == code and text in error.message, error
