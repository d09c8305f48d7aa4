"""Training outputs (`training output aux = ...`): auxiliary heads that count in parameters, not in
inference MACs or memory, and that the compiled module returns in training mode only, as torchvision's
GoogLeNet returns its auxiliary logits."""

from __future__ import annotations

import copy

import pytest
import torch

import cnndsl
from cnndsl.backends.torch.export import example_inputs, export_program
from tests.conftest import ROOT, SpecFiles

AUX = """input x: 3 x 16 x 16
f = x -> conv(8, 3, padding=1) -> relu
training output aux = f -> global_avgpool -> flatten -> linear(10) as aux_fc
output logits = f -> conv(8, 3, padding=1) -> global_avgpool -> flatten -> linear(10) as fc
"""


def test_googlenet_with_its_auxiliary_classifiers_counts_them_in_parameters_only(specs: SpecFiles) -> None:
    """torchvision's googlenet(aux_logits=True): 13,004,888 parameters; its inference MACs are those of the
    network without the heads (1,498,376,192), as its docs count them."""
    text = (ROOT / "specs" / "googlenet.cnn").read_text().replace("const aux_logits = false", "const aux_logits = true")
    with_heads = specs.load(text, name="googlenet.cnn")
    without = cnndsl.load(ROOT / "specs" / "googlenet.cnn")
    report, plain = with_heads.report(), without.report()
    assert (report.totals.params, report.totals.macs) == (13_004_888, 1_498_376_192)
    assert (plain.totals.params, plain.totals.macs) == (6_624_904, 1_498_376_192)
    assert report.totals.activation_bytes == plain.totals.activation_bytes
    assert with_heads.peak_activation_bytes() == without.peak_activation_bytes()
    assert report.training_outputs == ["aux1", "aux2"]
    heads = [layer.name for layer in report.layers if layer.training_only]
    assert heads[0] == "aux1.adaptive_avgpool1" and heads[-1] == "aux2.fc2" and len(heads) == 2 * 9


def test_the_module_returns_training_outputs_in_training_mode_only(specs: SpecFiles) -> None:
    network = specs.load(AUX)
    module = network.to_torch()
    assert "aux_fc.weight" in module.state_dict()
    (x,) = example_inputs(network.graph, batch=2)
    with torch.no_grad():
        logits = module(x)
        assert isinstance(logits, torch.Tensor) and logits.shape == (2, 10)
        module.train()
        aux, trained = module(x)  # declaration order
        assert aux.shape == (2, 10) and torch.equal(trained, logits)  # no dropout or batch norm here
        assert torch.equal(aux, module.aux_fc(torch.relu(module.conv1(x)).mean(dim=(2, 3))))
        twin = copy.deepcopy(module)
        assert len(twin(x)) == 2 and isinstance(twin.eval()(x), torch.Tensor)


def test_an_export_holds_the_inference_outputs(specs: SpecFiles) -> None:
    network = specs.load(AUX)
    module = network.to_torch()
    program = export_program(module, network.graph)
    assert len(program.graph_signature.user_outputs) == 1
    linears = [node for node in program.graph.nodes if node.op == "call_function" and "linear" in str(node.target)]
    assert len(linears) == 1  # the head does not run


@pytest.mark.parametrize(("text", "fragment"), [
    ("input x: 3 x 8 x 8\ntraining output a = x -> relu\n", "every output of the network is a `training output`"),
])
def test_a_network_needs_an_inference_output(specs: SpecFiles, text: str, fragment: str) -> None:
    [error] = specs.errors(text)
    assert error.code == "E209" and fragment in error.message


def test_training_outputs_by_name(specs: SpecFiles) -> None:
    network = specs.load("input x: 3 x 8 x 8\na = x -> conv(4, 1)\nb = x -> conv(4, 3)\n"
                         "training output a, b\noutput y = x -> relu\n")
    report = network.report()
    assert report.training_outputs == ["a", "b"] and report.totals.macs == 0
    assert [layer.training_only for layer in report.layers] == [True, True, False]
