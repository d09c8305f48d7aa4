"""The TVM backend: every spec and every op computes what the PyTorch backend computes with the same
weights; artifacts run with the TVM runtime alone; CUDA code generation builds; tuning is reused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import cnndsl
from cnndsl.backends import tvm as tvm_backend
from cnndsl.backends.torch.export import example_inputs
from cnndsl.backends.tvm.compile import compile_lowered, make_target, nvcc_available
from cnndsl.backends.tvm.lower import build_relax
from cnndsl.backends.tvm.pipeline import (
    bind_weights,
    choose_layout,
    choose_winograd,
    fold_scales_into_convs,
    prepare,
)
from cnndsl.backends.tvm.tune import TuningReport
from cnndsl.cli import main
from cnndsl.diagnostics import SpecError
from cnndsl.ops import activation
from tests.conftest import ROOT, SPECS, SpecFiles, assert_artifact_runs_without_the_compiler
from tests.test_ops import CASES
from tests.test_torch_backend import EXTRA_CASES, SPEC_FILES

pytestmark = pytest.mark.tvm  # compiles with TVM: not in `make test-fast`

runner = CliRunner()
LLVM = "llvm"


def tvm_outputs(network: cnndsl.Network, inputs: tuple[torch.Tensor, ...], seed: int = 0,
                layout: str = "nchw", winograd: str = "off") -> list[np.ndarray]:
    """Compiled untuned, weights folded, 2-D convolutions in `layout` (tuned CPU builds use NHWC, with
    Winograd for 3x3 stride-1 convolutions)."""
    import tvm
    from tvm import relax

    batch = inputs[0].shape[0]
    lowered = build_relax(network.graph, network.weights(seed), batch)
    program = compile_lowered(lowered, make_target(LLVM), layout=layout, winograd=winograd)
    if layout == "nhwc":
        assert_weights_stored_in_kernel_layout(prepare(lowered, "nhwc"))
    vm = relax.VirtualMachine(program.executable, tvm.cpu())
    out = vm["main"](*[tvm.runtime.tensor(x.numpy()) for x in inputs],
                     *[tvm.runtime.tensor(v) for v in program.param_values])
    return [out.numpy()] if len(network.graph.inference_outputs) == 1 else [item.numpy() for item in out]


def torch_outputs(network: cnndsl.Network, inputs: tuple[torch.Tensor, ...], seed: int = 0) -> list[np.ndarray]:
    with torch.no_grad():
        out = network.to_torch(seed=seed)(*inputs)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def assert_same(network: cnndsl.Network, batch: int = 1, layout: str = "nchw", winograd: str = "off") -> None:
    inputs = example_inputs(network.graph, batch=batch, seed=3)
    for got, expected in zip(tvm_outputs(network, inputs, layout=layout, winograd=winograd),
                             torch_outputs(network, inputs), strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def assert_weights_stored_in_kernel_layout(module: object) -> None:
    """Every 2-D convolution reads NHWC data and HWIO weights that are constants (transposed once, at
    compile time), and no weight is transposed per call."""
    import tvm
    from tvm import relax

    convs, per_call_transforms = [], []

    def visit(expr: relax.Expr) -> None:
        if not isinstance(expr, relax.Call) or not hasattr(expr.op, "name"):
            return
        if expr.op.name == "relax.nn.conv2d":
            constant = isinstance(expr.args[1], tvm.ir.GenericConst)
            convs.append((expr.attrs.data_layout, expr.attrs.kernel_layout, constant))
        if expr.op.name in ("relax.permute_dims", "relax.layout_transform") and \
                isinstance(expr.args[0], tvm.ir.GenericConst):
            per_call_transforms.append(expr)

    relax.analysis.post_order_visit(module["main"], visit)  # type: ignore[index]
    assert convs and set(convs) == {("NHWC", "HWIO", True)}
    assert not per_call_transforms


# TVM's untuned CPU kernels (what CI can afford) are slow on large convolutions: U-Net at 572 x 572 takes
# three minutes. These specs run at a smaller input the network accepts; every op is the same.
SMALLER_INPUTS = {
    "unet.cnn": {"image": (1, 188, 188)}, "vgg16.cnn": {"image": (3, 32, 32)},
    "resnet50.cnn": {"image": (3, 64, 64)}, "resnet152.cnn": {"image": (3, 64, 64)},
    "mobilenet_v2.cnn": {"image": (3, 64, 64)}, "squeezenet1_0.cnn": {"image": (3, 64, 64)},
    "squeezenet1_1.cnn": {"image": (3, 64, 64)}, "shufflenet_v2_x1_0.cnn": {"image": (3, 64, 64)},
    "densenet121.cnn": {"image": (3, 64, 64)}, "densenet169.cnn": {"image": (3, 64, 64)},
    "mobilenet_v3_large.cnn": {"image": (3, 64, 64)}, "mobilenet_v3_small.cnn": {"image": (3, 64, 64)},
    "convnext_tiny.cnn": {"image": (3, 64, 64)}, "efficientnet_v2_s.cnn": {"image": (3, 64, 64)},
    "fcn_upsampling.cnn": {"image": (3, 64, 64)}, "depthwise_separable.cnn": {"image": (3, 64, 64)},
    "volumetric.cnn": {"scan": (1, 32, 32, 32)}, "locally_connected_faces.cnn": {"face": (1, 64, 64)},
    **{f"{name}.cnn": {"image": (3, 32, 32)} for name in
       ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16_bn", "vgg19", "vgg19_bn")},
    **{f"{name}.cnn": {"image": (3, 64, 64)} for name in
       ("alexnet", "googlenet", "resnet34", "resnet101", "resnet50_v1", "resnet101_v1", "resnet152_v1")},
    "yolov1.cnn": {"image": (3, 64, 64)}, "fcn32s.cnn": {"image": (3, 32, 32)},
    # dilated ResNet-50 backbones at output stride 8: 64 x 64 leaves the ASPP an 8 x 8 map
    "fcn_resnet50.cnn": {"image": (3, 64, 64)}, "deeplabv3_resnet50.cnn": {"image": (3, 64, 64)},
    "resnet50_fpn.cnn": {"image": (3, 64, 64)},
}


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_every_spec_computes_what_pytorch_computes(path: Path) -> None:
    assert_same(cnndsl.load(path, inputs=SMALLER_INPUTS.get(path.name)))


@pytest.mark.parametrize(("text", "shape"), [c[:2] for c in CASES] + [c[:2] for c in EXTRA_CASES],
                         ids=[c[0] for c in CASES] + [f"extra:{c[0]}" for c in EXTRA_CASES])
def test_every_op_computes_what_pytorch_computes(specs: SpecFiles, text: str, shape: str) -> None:
    assert_same(specs.load(f"input x: {shape}\noutput y = x -> {text} as probe\n"), batch=2)


def _image_cases() -> list[tuple[str, str]]:
    return [(text, shape) for text, shape, *_ in [*CASES, *EXTRA_CASES] if shape.count("x") == 2]


@pytest.mark.parametrize(("text", "shape"), _image_cases(), ids=[c[0] for c in _image_cases()])
def test_ops_after_a_tuned_cpu_conv_compute_what_pytorch_computes(specs: SpecFiles, text: str, shape: str) -> None:
    """Tuned CPU builds run 2-D convolutions in NHWC, and the ops after them follow that layout: each op,
    fed by a shape-preserving 1x1 conv, still computes what PyTorch computes."""
    channels = shape.split("x")[0].strip()
    network = specs.load(f"input x: {shape}\noutput y = x -> conv({channels}, 1) -> {text} as probe\n")
    assert_same(network, batch=2, layout="nhwc")


@pytest.mark.parametrize("name", ["resnet18.cnn", "googlenet.cnn", "yolov1.cnn", "unet.cnn"])
def test_networks_in_the_tuned_cpu_layout_compute_what_pytorch_computes(name: str) -> None:
    """NHWC, with Winograd for every 3x3 stride-1 convolution (as tuned CPU builds run them)."""
    path = next(p for p in SPEC_FILES if p.name == name)
    assert_same(cnndsl.load(path, inputs=SMALLER_INPUTS.get(name)), layout="nhwc", winograd="on")


@pytest.mark.parametrize(("conv", "shape"), [
    ("conv(16, 3, padding=1)", "16 x 8 x 8"),                 # output a multiple of the 4x4 tile
    ("conv(24, 3, padding=1, bias=false)", "16 x 13 x 9"),   # partial tiles on both axes
    ("conv(16, 3)", "32 x 7 x 6"),                            # no padding
    ("conv(16, 3, padding=same)", "16 x 5 x 11"),
    ("conv(16, 3, padding=((0, 2), (1, 0)))", "16 x 6 x 6"),  # asymmetric
    ("conv(8, 3, padding=1)", "16 x 1 x 1"),                  # one output position, mostly padding
])
def test_winograd_convolutions_compute_what_pytorch_computes(specs: SpecFiles, conv: str, shape: str) -> None:
    network = specs.load(f"input x: {shape}\noutput y = x -> {conv} as c -> batchnorm -> relu\n")
    lowered = build_relax(network.graph, network.weights(), 2)
    from tvm import relax

    calls: list[str] = []
    relax.analysis.post_order_visit(prepare(lowered, "nhwc", winograd=True)["main"], lambda e: calls.append(
        e.args[0].name_hint) if isinstance(e, relax.Call) and getattr(e.op, "name", "") == "relax.call_tir" else None)
    assert any(name.startswith("conv2d_winograd") for name in calls), calls
    assert_same(network, batch=2, layout="nhwc", winograd="on")


@pytest.mark.parametrize("conv", ["conv(16, 3, stride=2, padding=1)", "conv(16, 3, padding=2, dilation=2)",
                                  "conv(16, 3, padding=1, groups=2)", "conv(16, 5, padding=2)"])
def test_only_3x3_stride_1_convolutions_use_winograd(specs: SpecFiles, conv: str) -> None:
    network = specs.load(f"input x: 16 x 8 x 8\noutput y = x -> {conv}\n")
    prepared = prepare(build_relax(network.graph, network.weights(), 1), "nhwc", winograd=True)
    assert len(_conv_weights(prepared)) == 1  # still a direct convolution


@pytest.mark.parametrize(("requested", "target", "tuned", "expected"), [
    ("auto", LLVM, True, "nhwc"), ("auto", LLVM, False, "nchw"),
    ("auto", '{"kind": "cuda", "arch": "sm_80"}', True, "nchw"), ("nhwc", LLVM, False, "nhwc"),
    ("nchw", LLVM, True, "nchw"),
])
def test_auto_layout_is_nhwc_for_tuned_cpu_builds_only(requested: str, target: str, tuned: bool, expected: str) -> None:
    assert choose_layout(requested, make_target(target), tuned) == expected


@pytest.mark.parametrize(("requested", "layout", "target", "tuned", "expected"), [
    ("auto", "nhwc", LLVM, True, True), ("auto", "nhwc", LLVM, False, False), ("auto", "nchw", LLVM, True, False),
    ("auto", "nhwc", '{"kind": "cuda", "arch": "sm_80"}', True, False), ("on", "nhwc", LLVM, False, True),
    ("off", "nhwc", LLVM, True, False),
])
def test_auto_winograd_is_for_tuned_nhwc_cpu_builds_only(requested: str, layout: str, target: str, tuned: bool,
                                                          expected: bool) -> None:
    assert choose_winograd(requested, layout, make_target(target), tuned) is expected  # type: ignore[arg-type]


def _conv_weights(module: object) -> list[np.ndarray]:
    import tvm
    from tvm import relax

    found: list[np.ndarray] = []
    relax.analysis.post_order_visit(module["main"], lambda e: found.append(e.args[1].value.numpy())  # type: ignore[index]
                                    if isinstance(e, relax.Call) and getattr(e.op, "name", "") == "relax.nn.conv2d"
                                    and isinstance(e.args[1], tvm.ir.GenericConst) else None)
    return found


@pytest.mark.parametrize("bias", ["false", "true"])
def test_batch_norm_folds_into_the_convolution_before_it(specs: SpecFiles, bias: str) -> None:
    network = specs.load(f"input x: 3 x 8 x 8\noutput y = x -> conv(4, 3, bias={bias}) as c -> batchnorm as bn\n")
    state = network.weights()
    state["bn.running_var"] = np.linspace(0.5, 2.0, 4).astype(np.float32)
    state["bn.weight"] = np.linspace(-1.0, 1.0, 4).astype(np.float32)
    prepared = prepare(build_relax(network.graph, state, 1), "nchw")
    (weight,) = _conv_weights(prepared)
    scale = state["bn.weight"] / np.sqrt(state["bn.running_var"] + 1e-5)
    np.testing.assert_allclose(weight, state["c.weight"] * scale[:, None, None, None], rtol=1e-6)
    multiplies: list[object] = []
    from tvm import relax

    relax.analysis.post_order_visit(prepared["main"], lambda e: multiplies.append(e) if isinstance(e, relax.Call)
                                    and getattr(e.op, "name", "") == "relax.multiply" else None)
    assert not multiplies  # no per-call scale left


def test_a_conv_read_elsewhere_keeps_its_own_weights(specs: SpecFiles) -> None:
    """Folding the scale into a convolution whose output another layer also reads would change that reader."""
    network = specs.load("input x: 3 x 8 x 8\nc = x -> conv(4, 3) as c\nb = c -> batchnorm as bn\n"
                         "output y = [b, c] -> add\n")
    state = network.weights()
    state["bn.weight"] = np.full(4, 3.0, np.float32)
    lowered = build_relax(network.graph, state, 1)
    (weight,) = _conv_weights(fold_scales_into_convs(bind_weights(lowered)))
    np.testing.assert_array_equal(weight, state["c.weight"])
    assert_same(network)


def test_artifact_params_are_what_the_kernels_read(specs: SpecFiles, tmp_path: Path) -> None:
    """Batch norm folded: ResNet-18 stores one weight and one bias per convolution, none per batch norm."""
    network = cnndsl.load(SPECS / "resnet18.cnn", inputs={"image": (3, 32, 32)})
    compiled = tvm_backend.compile_network(network.graph, network.weights(), LLVM, tmp_path / "r18")
    manifest = json.loads((compiled.path / "manifest.json").read_text())
    assert manifest["layout"] == "nchw" and len(manifest["params"]) == 2 * 21  # 20 convolutions and fc
    with np.load(compiled.path / "params.npz") as stored:
        assert sorted(stored.files) == sorted([*manifest["params"], "__graph_sha256__"])


@pytest.fixture
def failing_layout_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    """ConvertLayout failing the way TVM 0.27's did on relax.stack."""
    from tvm import relax

    def broken(_: object) -> object:
        raise IndexError("Index -1 out of bounds 5")

    monkeypatch.setattr(relax.transform, "ConvertLayout", lambda _: broken)


ONE_CONV = "input x: 3 x 8 x 8\noutput y = x -> conv(4, 3) -> relu\n"


@pytest.mark.usefixtures("failing_layout_conversion")
def test_a_failed_layout_conversion_keeps_nchw_with_a_warning(specs: SpecFiles) -> None:
    network = specs.load(ONE_CONV)
    lowered = build_relax(network.graph, network.weights(), 1)
    with pytest.warns(UserWarning, match="keeping NCHW convolutions.*Index -1 out of bounds 5"):
        prepared = prepare(lowered, "nhwc")
    assert [w.shape for w in _conv_weights(prepared)] == [(4, 3, 3, 3)]


@pytest.mark.parametrize(("report", "expected"), [
    (TuningReport(tasks=9, tuned_now=9, trials=40, seconds=1.0), None),
    (TuningReport(tasks=9, tuned_now=0, trials=0, seconds=0.0), None),  # all were in the database
    (TuningReport(tasks=9, tuned_now=2, trials=8, seconds=1.0, left_untuned=7),
     "7 of 9 tasks got no tuning record within 8 trials and keep default schedules; 36 trials or more"),
    (TuningReport(tasks=20, tuned_now=3, trials=12, seconds=1.0, left_untuned=2),  # 15 were in the database
     "2 of 20 tasks got no tuning record within 12 trials and keep default schedules; 20 trials or more"),
])
def test_a_budget_that_leaves_tasks_untuned_says_how_many_trials_reach_them(report: TuningReport,
                                                                              expected: str | None) -> None:
    shortfall = report.shortfall()
    if expected is None:
        assert shortfall is None
    else:
        assert shortfall is not None and shortfall.startswith(expected)


@pytest.mark.usefixtures("failing_layout_conversion")
def test_cnndsl_warnings_print_as_one_line(specs: SpecFiles, tmp_path: Path) -> None:
    result = runner.invoke(main, ["compile", str(specs.write(ONE_CONV)), "--to", "tvm", "--layout", "nhwc",
                                  "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "warning: keeping NCHW convolutions: " in result.stderr and "UserWarning" not in result.stderr


@pytest.mark.parametrize(("text", "shape"), [
    ("upsample(size=7)", "2 x 3"), ("upsample(size=(5, 7))", "2 x 3 x 4"),  # nearest, non-integer ratios
    ("upsample(size=(5, 7), mode=bilinear)", "2 x 3 x 4"), ("adaptive_maxpool((3, 2))", "2 x 7 x 5"),
    ("adaptive_avgpool((3, 2))", "2 x 7 x 5"), ("avgpool(3, stride=2, padding=1, ceil=true)", "2 x 8 x 8"),
    ("avgpool(3, stride=2, padding=1, count_include_pad=false)", "2 x 7 x 7"),
    ("maxpool(3, stride=2, dilation=2, padding=1)", "2 x 9 x 9"),
    ("conv_transpose2d(4, 3, stride=2, padding=1, output_padding=1, groups=2)", "4 x 5 x 5"),
    ("pixel_shuffle(2)", "12 x 3 x 5"), ("pixel_unshuffle(3)", "2 x 6 x 9"),
])
def test_resampling_rules_follow_pytorch(specs: SpecFiles, text: str, shape: str) -> None:
    assert_same(specs.load(f"input x: {shape}\noutput y = x -> {text}\n"), batch=2)


def test_batch_norm_statistics_are_used(specs: SpecFiles, tmp_path: Path) -> None:
    network = specs.load("input x: 4 x 5 x 5\noutput y = x -> conv(6, 3) -> batchnorm -> relu\n")
    module = network.to_torch(seed=0)
    module.batchnorm1.running_mean.uniform_(-1, 1)
    module.batchnorm1.running_var.uniform_(0.5, 2)
    torch.save(module.state_dict(), tmp_path / "w.pt")
    inputs = example_inputs(network.graph, batch=2)
    lowered = build_relax(network.graph, network.weights(weights=tmp_path / "w.pt"), 2)
    import tvm
    from tvm import relax

    program = compile_lowered(lowered, make_target(LLVM))
    vm = relax.VirtualMachine(program.executable, tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(inputs[0].numpy()), *[tvm.runtime.tensor(v) for v in program.param_values])
    with torch.no_grad():
        np.testing.assert_allclose(got.numpy(), module(*inputs).numpy(), rtol=0, atol=1e-5)


def test_unsupported_ops_stop_before_lowering(specs: SpecFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    network = specs.load("input x: 3 x 8 x 8\noutput y = x -> conv(4, 3) -> gelu\n    -> conv(4, 3) -> gelu\n")
    monkeypatch.delitem(tvm_backend.lowerings.LOWERINGS.entries, activation.Gelu)
    with pytest.raises(SpecError) as info:
        tvm_backend.compile_network(network.graph, network.weights(), LLVM, Path("unused"))
    found = [(d.code, d.location.line if d.location else 0) for d in info.value.diagnostics]
    assert found == [("E600", 2), ("E600", 3)]
    assert "has no TVM lowering" in info.value.diagnostics[0].message


def test_artifact_runs_in_a_process_without_the_compiler(tmp_path: Path) -> None:
    out = tmp_path / "build" / "resnet18"
    result = runner.invoke(main, ["compile", str(SPECS / "resnet18.cnn"), "--to", "tvm", "--target", "llvm",
                                  "-o", str(out), "--seed", "4"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"] == {"image": [1, 3, 224, 224]} and manifest["outputs"] == {"logits": [1, 1000]}
    network = cnndsl.load(SPECS / "resnet18.cnn")
    (x,) = example_inputs(network.graph, batch=1)
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "expected.npy", torch_outputs(network, (x,), seed=4)[0])
    assert assert_artifact_runs_without_the_compiler(out, x.numpy(), np.load(tmp_path / "expected.npy")) == (1, 1000)

    result = runner.invoke(main, ["run", str(out), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), np.load(tmp_path / "expected.npy"), rtol=0, atol=1e-4)
    assert "logits: 1 x 1000" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "missing.npy"], "input missing.npy: no such file"),
    ([], "takes 1 input(s) (image); got 0"),
])
def test_run_usage_errors(args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "lenet5"
    assert runner.invoke(main, ["compile", str(SPECS / "lenet5.cnn"), "--to", "tvm", "-o", str(out)]).exit_code == 0
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["run", str(out), *args])
    assert result.exit_code == 2 and message in result.output


def test_compile_option_mistakes_are_usage_errors() -> None:
    result = runner.invoke(main, ["compile", str(SPECS / "mnist1d.cnn"), "--to", "tvm", "--dynamic-batch", "--tune"])
    assert result.exit_code == 2 and "tuned kernels are specialised to one batch" in result.output
    result = runner.invoke(main, ["compile", str(SPECS / "mnist1d.cnn"), "--to", "tvm", "--fold-bn"])
    assert result.exit_code == 2 and "apply to --to torch" in result.output
    result = runner.invoke(main, ["compile", str(SPECS / "mnist1d.cnn"), "--target", "cuda"])
    assert result.exit_code == 2 and "apply to --to tvm" in result.output
    for target in ('{"kind": "nope"}', '{"kind": "llvm", "mcpu": 3}', "{not json"):
        result = runner.invoke(main, ["compile", str(SPECS / "mnist1d.cnn"), "--to", "tvm", "--target", target])
        assert result.exit_code == 2 and f"invalid target {target!r}" in result.output, result.output
        result = runner.invoke(main, ["tune", str(SPECS / "mnist1d.cnn"), "--target", target, "--trials", "4"])
        assert result.exit_code == 2 and f"invalid target {target!r}" in result.output, result.output
    result = runner.invoke(main, ["compile", str(SPECS / "mnist1d.cnn"), "--layout", "nhwc"])
    assert result.exit_code == 2 and "apply to --to tvm" in result.output
    result = runner.invoke(main, ["tune", str(SPECS / "mnist1d.cnn"), "--layout", "nwhc"])
    assert result.exit_code == 2 and "'nwhc' is not one of" in result.output


@pytest.mark.skipif(not nvcc_available(), reason="nvcc is not installed")
def test_cuda_code_generation_for_resnet18(tmp_path: Path) -> None:
    """No GPU needed: lower ResNet-18 for CUDA (DLight's default GPU schedules), then compile every
    generated kernel with nvcc to a fatbin, as the TVM runtime does when it loads the module."""
    network = cnndsl.load(SPECS / "resnet18.cnn")
    lowered = build_relax(network.graph, network.weights(), 1)
    executable = compile_lowered(lowered, make_target('{"kind": "cuda", "arch": "sm_80"}')).executable
    device_modules = [m for host in executable.mod.imports for m in host.imports if m.kind == "cuda"]
    assert len(device_modules) == 1
    source = device_modules[0].inspect_source("cuda")
    assert source.count("__global__") >= 20 and "fused_conv2d" in source
    import tvm
    from tvm.support.nvcc import compile_cuda

    with tvm.target.Target({"kind": "cuda", "arch": "sm_80"}):
        binary = compile_cuda(source, target_format="fatbin", compiler="nvcc")
    assert len(binary) > 10_000


def test_compiling_with_a_database_that_lacks_records_says_so(tmp_path: Path) -> None:
    result = runner.invoke(main, ["compile", str(SPECS / "mnist1d.cnn"), "--to", "tvm", "--tune-db",
                                  str(tmp_path / "empty"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert re.search(r"warning: (\d+) of \1 kernels have no tuning record in .*empty for this target", result.stderr)
    assert f"records from {tmp_path / 'empty'}" in result.stdout


@pytest.mark.parametrize("spec", [
    "input a: 8 x 4 x 4\ninput b: 8 x 1 x 1\noutput y = [a, b] -> mul",
    "input a: 4 x 5\ninput b: 8 x 1 x 5\noutput y = [a, b] -> add",
    "input x: 3 x 8 x 8\nc = x -> conv(8, 3)\ng = c -> global_avgpool -> conv(8, 1) -> sigmoid\n"
    "output y = [c, g] -> mul -> relu",
])
def test_broadcasting_merges_compute_what_pytorch_computes(specs: SpecFiles, spec: str) -> None:
    assert_same(specs.load(spec + "\n"), batch=2)


def test_training_outputs_are_not_compiled(specs: SpecFiles) -> None:
    """The artifact computes the inference outputs, equal to the PyTorch module's in eval mode."""
    network = specs.load("input x: 3 x 8 x 8\nf = x -> conv(8, 3, padding=1) -> relu\n"
                         "training output aux = f -> global_avgpool -> flatten -> linear(10)\n"
                         "output y = f -> conv(4, 1)\n")
    lowered = build_relax(network.graph, network.weights())
    assert list(lowered.output_shapes) == ["y"] and not any("linear" in name for name in lowered.param_names)
    assert_same(network, batch=2)


@pytest.mark.parametrize("spec", ["resnet18", "unet", "googlenet"])
def test_a_dynamic_batch_artifact_runs_at_any_batch(spec: str, tmp_path: Path) -> None:
    """A symbolic batch in Relax: one artifact, run at batch 1 and 7, equal to PyTorch; the manifest says
    null for the batch, and the runtime refuses inputs of different batches."""
    small = {"resnet18": (3, 32, 32), "unet": (1, 188, 188), "googlenet": (3, 64, 64)}
    network = cnndsl.load(ROOT / "specs" / f"{spec}.cnn", inputs={"image": small[spec]})
    result = runner.invoke(main, ["compile", str(ROOT / "specs" / f"{spec}.cnn"), "--to", "tvm", "--dynamic-batch",
                                  "--input", "image=" + "x".join(map(str, small[spec])), "-o", str(tmp_path / "a")])
    assert result.exit_code == 0 and "any batch" in result.output, result.output
    model = cnndsl.runtime.load(tmp_path / "a")
    assert model.inputs["image"] == (None, *small[spec]) and next(iter(model.outputs.values()))[0] is None
    module = network.to_torch()
    for batch in (1, 7):
        (x,) = example_inputs(network.graph, batch=batch)
        np.testing.assert_allclose(model(x.numpy()), module(x).detach().numpy(), atol=2e-5)
    if spec == "resnet18":
        with pytest.raises(cnndsl.runtime.ArtifactError, match=r"must be N x 3 x 32 x 32 \(any batch N >= 1\)"):
            model(np.zeros((2, 3, 16, 16), np.float32))


@pytest.mark.skipif(not nvcc_available(), reason="nvcc is not installed")
def test_cuda_artifacts_carry_kernels_compiled_ahead_of_time(tmp_path: Path) -> None:
    """Without a CUDA driver TVM keeps the kernels' source in the library, compiled when loaded; the
    artifact carries them compiled by nvcc, and the runtime's hook hands TVM that binary for that source
    (through TVM's global-function registry, as the library's loader calls it)."""
    import hashlib

    import tvm_ffi

    from cnndsl import runtime

    network, target = cnndsl.load(SPECS / "mnist1d.cnn"), '{"kind": "cuda", "arch": "sm_90"}'
    out = network.to_tvm(target, tmp_path / "a").path
    manifest = runtime.read_manifest(out)
    runtime.verify_files(out, manifest)
    binary = (out / runtime.KERNELS).read_bytes()
    assert binary[:4] == b"\x50\xed\x55\xba"  # a fatbin's magic number
    assert manifest.cuda_kernels is not None and manifest.cuda_kernels["arch"] == "sm_90"
    executable = compile_lowered(build_relax(network.graph, network.weights(), 1), make_target(target)).executable
    source = next(m for host in executable.mod.imports for m in host.imports if m.kind == "cuda").inspect_source("cuda")
    assert hashlib.sha256(source.encode()).hexdigest() == manifest.cuda_kernels["source_sha256"]
    runtime._precompiled_kernels(out / runtime.KERNELS, manifest)
    hook = tvm_ffi.get_global_func("tvm_callback_cuda_compile")
    assert bytes(hook(source)) == binary
