"""The training-memory estimate (`check --train`) against what PyTorch holds for one training step:
the tensors autograd keeps for the backward pass (counted through torch.autograd.graph.saved_tensors_hooks,
each storage once, parameters apart), the gradients after backward, and the optimizer's state after a step."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import cnndsl
from cnndsl.backends.torch.export import example_inputs
from cnndsl.cli import main
from tests.conftest import SPECS

TOLERANCE = 0.05  # the estimate leaves out norm layers' saved statistics (a few numbers per channel)


def kept_by_autograd(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[int, torch.Tensor]:
    parameters = {p.untyped_storage().data_ptr() for p in module.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = module(*inputs)
    return sum(storages.values()), out


@pytest.mark.parametrize(("spec", "size"), [
    ("lenet5", None), ("mnist1d", None), ("resnet18", 64), ("mobilenet_v2", 64), ("vgg11_bn", 32),
    ("googlenet", 64), ("densenet121", 64), ("mobilenet_v3_large", 64), ("shufflenet_v2_x1_0", 64),
    ("squeezenet1_1", 64), ("convnext_tiny", 64), ("efficientnet_v2_s", 64),
])
def test_kept_activations_match_what_autograd_keeps(spec: str, size: int | None) -> None:
    network = cnndsl.load(SPECS / f"{spec}.cnn", inputs=None if size is None else {"image": (3, size, size)})
    module = network.to_torch().train()
    measured, _ = kept_by_autograd(module, example_inputs(network.graph, batch=2))
    estimate = network.training_memory("sgd", batch=2).kept_activation_bytes
    assert abs(estimate - measured) <= TOLERANCE * measured, (estimate, measured)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_gradients_and_optimizer_state_are_what_a_step_allocates(optimizer: str) -> None:
    network = cnndsl.load(SPECS / "resnet18.cnn", inputs={"image": (3, 32, 32)})
    module = network.to_torch().train()
    _, out = kept_by_autograd(module, example_inputs(network.graph, batch=2))
    out.sum().backward()
    step = (torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9) if optimizer == "sgd"
            else torch.optim.Adam(module.parameters()))
    step.step()
    estimate = network.training_memory(optimizer, batch=2)
    assert estimate.gradient_bytes == sum(p.grad.nbytes for p in module.parameters() if p.grad is not None)
    state = sum(t.nbytes for s in step.state.values() for t in s.values() if torch.is_tensor(t) and t.dim())
    assert estimate.optimizer_bytes == state
    assert estimate.weights_bytes == sum(t.nbytes for t in module.state_dict().values() if t.dim())


def test_check_train_reports_it() -> None:
    result = CliRunner().invoke(main, ["check", str(SPECS / "resnet18.cnn"), "--train", "adam", "--batch", "8",
                                       "--json"])
    training = json.loads(result.stdout)["training"]
    assert training["optimizer"] == "adam" and training["optimizer_bytes"] == 2 * training["gradient_bytes"]
    assert training["total_bytes"] == sum(training[k] for k in ("weights_bytes", "gradient_bytes", "optimizer_bytes",
                                                                "kept_activation_bytes"))
    text = CliRunner().invoke(main, ["check", str(SPECS / "resnet18.cnn"), "--train", "sgd", "-q"]).output
    assert "Training step (sgd, batch 1):" in text and "activations kept for backward" in text
