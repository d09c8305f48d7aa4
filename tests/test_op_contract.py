"""The op contract: every registered op class lowers in both backends (by a hand-written lowering keyed by
its class, or by its element-wise formula), is documented, and keeps its promises to the analyses.

Both backends' numerics per op are compared in tests/test_torch_backend.py and tests/test_tvm_backend.py
(the table of tests/test_ops.py); here, what holds for the op classes themselves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import cnndsl
from cnndsl.backends import Lowerings, unsupported_ops
from cnndsl.backends.torch.compose import TORCH, Composed, TorchPrimitives
from cnndsl.backends.torch.lowerings import LOWERINGS as TORCH_LOWERINGS
from cnndsl.backends.torch.lowerings import lower_layer
from cnndsl.ops import REGISTRY, Op, activation
from cnndsl.ops.compose import PRIMITIVES
from tests.conftest import SpecFiles
from tests.test_ops import CASES

ROOT = Path(__file__).resolve().parent.parent
OPS = sorted({op.kind: op for op in REGISTRY.values()}.items())  # one instance per op class
OP_IDS = [kind for kind, _ in OPS]


def _tvm_lowerings() -> Lowerings[Any]:
    from cnndsl.backends.tvm.lowerings import LOWERINGS

    return LOWERINGS


@pytest.mark.parametrize(("kind", "op"), OPS, ids=OP_IDS)
def test_every_op_lowers_in_both_backends(kind: str, op: Op) -> None:
    assert TORCH_LOWERINGS.lowers(op), f"`{kind}` has no PyTorch lowering and no formula"
    assert _tvm_lowerings().lowers(op), f"`{kind}` has no TVM lowering and no formula"


def test_every_op_is_documented() -> None:
    documented = set(re.findall(r"^### `(\w+)\(", (ROOT / "docs" / "ops.md").read_text(), re.MULTILINE))
    assert documented == {kind for kind, _ in OPS}


def test_lowerings_are_keyed_by_registered_op_classes() -> None:
    classes = {type(op) for _, op in OPS}
    for table in (TORCH_LOWERINGS, _tvm_lowerings()):
        assert set(table.entries) <= classes


def test_both_backends_implement_every_primitive() -> None:
    from cnndsl.backends.tvm.lowerings import RelaxPrimitives

    for implementation in (TorchPrimitives, RelaxPrimitives):
        assert [name for name in PRIMITIVES if not callable(getattr(implementation, name, None))] == []


FORMULAS_WITH_NATIVE_MODULES = [("hardsigmoid", nn.Hardsigmoid()), ("hardswish", nn.Hardswish()),
                                ("mish", nn.Mish()), ("elu(0.7)", nn.ELU(0.7))]


@pytest.mark.parametrize(("text", "module"), FORMULAS_WITH_NATIVE_MODULES,
                         ids=[text for text, _ in FORMULAS_WITH_NATIVE_MODULES])
def test_formulas_agree_with_torch_nn(specs: SpecFiles, text: str, module: nn.Module) -> None:
    """PyTorch lowers these ops to torch.nn's classes, TVM by their formula: the formula, evaluated with
    torch's primitives, is torch.nn's function (so both backends compute the same thing)."""
    network = specs.load(f"input x: 3 x 40\noutput y = x -> {text} as probe\n")
    node = network.graph.node("probe")
    x = torch.linspace(-30, 30, 120).reshape(1, 3, 40)
    formula = node.op.compose(TORCH, x, network.graph.facts("probe").attrs)
    torch.testing.assert_close(formula, module(x), rtol=1e-6, atol=1e-6)


def test_a_formula_module_prints_as_its_op_and_computes_the_formula(specs: SpecFiles) -> None:
    network = specs.load("input x: 3 x 8\noutput y = x -> hardswish as probe\n")
    layer = Composed(network.graph.node("probe").op, network.graph.facts("probe").attrs)
    assert repr(layer) == "Hardswish()"
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(layer(x), nn.functional.hardswish(x))


@pytest.mark.parametrize(("text", "module"), [("softplus", nn.Softplus()), ("softplus(0.5, 4)", nn.Softplus(0.5, 4.0))])
def test_an_op_with_only_a_formula_lowers_to_pytorch_by_it(specs: SpecFiles, text: str, module: nn.Module) -> None:
    """softplus has no hand-written PyTorch lowering: its module is its formula, equal to torch.nn's."""
    network = specs.load(f"input x: 3 x 40\noutput y = x -> {text} as probe\n")
    layer = network.to_torch().probe
    assert isinstance(layer, Composed) and repr(layer) == repr(module)
    x = torch.linspace(-30, 30, 120).reshape(1, 3, 40)
    torch.testing.assert_close(layer(x), module(x), rtol=0, atol=0)


def test_unsupported_ops_are_all_reported_at_once_where_they_are_used(specs: SpecFiles) -> None:
    network = specs.load("input x: 3 x 8 x 8\n"
                         "output y = x -> conv(4, 3) -> relu\n"
                         "    -> conv(4, 3) -> relu\n")
    found = unsupported_ops(network.graph, TORCH_LOWERINGS.without(activation.Relu).lowers, "PyTorch")
    assert [(d.code, d.location.line if d.location else None) for d in found] == [("E600", 2), ("E600", 3)]
    assert "op `relu` of `relu1` has no PyTorch lowering" in found[0].message
    assert "relu" not in found[0].hint.split(": ")[1].split(", ")  # type: ignore[union-attr]


@pytest.mark.parametrize(("kind", "op"), [(kind, op) for kind, op in OPS if op.computes_in_place],
                         ids=[kind for kind, op in OPS if op.computes_in_place])
def test_ops_said_to_compute_in_place_lower_to_modules_that_can(specs: SpecFiles, kind: str, op: Op) -> None:
    """The memory estimate counts these layers as overwriting their input: PyTorch's module must be able to
    (the builder sets its `inplace`), or the estimate is wrong."""
    arguments = {"conv": "(4, 3)", "dropout": "(0.5)"}.get(kind, "")
    shapes = {"add": "4 x 6 x 6"}
    inputs = "[c, c]" if op.min_inputs > 1 else "c"
    network = specs.load(f"input x: {shapes.get(kind, '4 x 6 x 6')}\nc = x -> conv(4, 3, padding=1)\n"
                         f"output y = {inputs} -> {kind}{arguments} as probe\n")
    module = lower_layer(network.graph.node("probe").op, network.graph.facts("probe").attrs)
    assert hasattr(module, "inplace"), f"{type(module).__name__} of `{kind}` cannot compute in place"


def test_nodes_carry_their_op() -> None:
    network = cnndsl.load(ROOT / "specs" / "resnet18.cnn")
    conv = network.graph.node("conv1")
    assert conv.op is REGISTRY[conv.op.name] and conv.op.kind == "conv"


@pytest.mark.parametrize(("text", "shape"), [case[:2] for case in CASES], ids=[case[0] for case in CASES])
def test_each_layer_holds_the_tensors_its_op_declares(specs: SpecFiles, text: str, shape: str) -> None:
    """`Op.tensors` names and shapes each tensor of a layer: the PyTorch module's state_dict holds exactly
    those (batch norm's step counter aside), and the TVM lowering reads its weights by those names."""
    network = specs.load(f"input x: {shape}\noutput y = x -> {text} as probe\n")
    node = network.graph.node("probe")
    declared = {name: tensor.shape for name, tensor in node.op.tensors(network.graph.facts("probe").attrs).items()}
    state = network.to_torch().probe.state_dict()
    held = {name: tuple(value.shape) for name, value in state.items() if name != "num_batches_tracked"}
    assert held == declared
