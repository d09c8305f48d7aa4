"""The PyTorch backend: every layer's real output shape and parameter count equal the checker's, the
custom modules compute what they claim (against independent formulations), and failures are located."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnndsl
from cnndsl.backends.torch.export import example_inputs
from cnndsl.backends.torch.modules import LocallyConnected, PaddedAvgPool
from cnndsl.diagnostics import SpecError, UsageError
from cnndsl.graph.model import INPUT
from tests.conftest import ROOT, SpecFiles
from tests.test_ops import CASES

SPEC_FILES = sorted((ROOT / "specs").glob("*.cnn")) + sorted((ROOT / "examples").rglob("*.cnn"))

# layers whose lowering needs a module of our own (asymmetric padding), beyond the op table's cases
EXTRA_CASES = [
    ("maxpool(3, stride=2, padding=same)", "2 x 8 x 8", [2, 4, 4]),
    ("avgpool(2, stride=2, padding=same)", "2 x 7 x 7", [2, 4, 4]),
    ("avgpool(2, stride=2, padding=same, count_include_pad=false)", "2 x 7 x 7", [2, 4, 4]),
    ("conv(4, 4, padding=same)", "2 x 9 x 9", [4, 9, 9]),
    ("conv3d(2, 2, stride=2, padding=same)", "1 x 5 x 5 x 5", [2, 3, 3, 3]),
    ("upsample(size=(6, 9), mode=bilinear, align_corners=true)", "3 x 4 x 4", [3, 6, 9]),
    ("upsample(2, mode=linear)", "2 x 3 x 4 x 5", [2, 6, 8, 10]),
    ("locally_connected1d(3, 3, stride=2, dilation=2, padding=1)", "2 x 11", [3, 5]),
    ("locally_connected3d(2, 2)", "1 x 3 x 4 x 5", [2, 2, 3, 4]),
    ("batchnorm", "6", [6]),
    ("batchnorm", "6 x 5", [6, 5]),
    ("frozen_batchnorm(eps=0.001)", "6 x 5", [6, 5]),
    ("softmax(dim=-1)", "3 x 5", [3, 5]),
]


def shapes_seen(module: nn.Module, network: cnndsl.Network, inputs: tuple[torch.Tensor, ...]) -> dict[str, tuple]:
    """Every layer's output shape (without the batch) from forward hooks on its submodule."""
    seen: dict[str, tuple] = {}
    handles = [module.get_submodule(node.name).register_forward_hook(
        lambda mod, args, out, name=node.name: seen.__setitem__(name, tuple(out.shape[1:])))
        for node in network.graph.nodes() if node.op != INPUT]
    with torch.no_grad():
        module(*inputs)
    for handle in handles:
        handle.remove()
    return seen


# FCN-32s is 181 GMACs at its 500 x 500 input: a smaller input keeps every layer and the test fast.
SMALLER_FOR_TORCH = {"fcn32s.cnn": {"image": (3, 200, 200)}, "fcn_resnet50.cnn": {"image": (3, 128, 128)},
                     "deeplabv3_resnet50.cnn": {"image": (3, 128, 128)}, "resnet50_fpn.cnn": {"image": (3, 128, 128)}}


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_every_layer_has_the_checked_shape_and_parameters(path: Path) -> None:
    network = cnndsl.load(path, inputs=SMALLER_FOR_TORCH.get(path.name))
    module = network.to_torch()
    inferred = {node.name: network.graph.shape(node.name) for node in network.graph.nodes()
                if node.op != INPUT}
    assert shapes_seen(module, network, example_inputs(network.graph, batch=2)) == inferred
    totals = network.report().totals
    assert sum(p.numel() for p in module.parameters()) == totals.params
    assert sum(p.numel() for p in module.parameters() if p.requires_grad) == totals.trainable_params


@pytest.mark.parametrize(("text", "shape", "out"), [c[:3] for c in CASES] + EXTRA_CASES,
                         ids=[c[0] for c in CASES] + [f"extra:{c[0]}" for c in EXTRA_CASES])
def test_every_op_lowers_to_its_checked_shape(specs: SpecFiles, text: str, shape: str, out: list[int]) -> None:
    network = specs.load(f"input x: {shape}\noutput y = x -> {text} as probe\n")
    module = network.to_torch().train()  # train mode too: batch norm, dropout
    (x,) = example_inputs(network.graph, batch=3)
    assert list(module(x).shape) == [3, *out]
    assert sum(p.numel() for p in module.parameters()) == network.report().totals.params


def test_seeded_initialisation_is_reproducible_and_leaves_the_global_rng_alone(specs: SpecFiles) -> None:
    network = specs.load("input x: 3 x 8 x 8\noutput y = x -> conv(4, 3) -> flatten -> linear(5)\n")
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = network.to_torch(seed=7), network.to_torch(seed=7), network.to_torch(seed=8)
    assert torch.rand(1).item() == before.item()
    for key, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[key])
    assert not torch.equal(a.state_dict()["conv1.weight"], c.state_dict()["conv1.weight"])


def test_names_and_structure_follow_the_spec() -> None:
    module = cnndsl.load(ROOT / "specs" / "resnet18.cnn").to_torch()
    assert isinstance(module.layer2[0].downsample[0], nn.Conv2d)  # `conv(...) as 0` in block `projection`
    assert str(module.layer2[1]).startswith("basic(")
    assert isinstance(module.layer2[0].downsample, nn.Sequential)  # layers numbered 0, 1, ..., each feeding the next
    assert isinstance(module.layer1, nn.Sequential)  # `basic(64) x n1 as layer1`: numbered children
    assert "layer4.1.conv2.weight" in module.state_dict()  # `resnet(2, 2, 2, 2) as _`: no prefix
    assert "def forward(self, image)" in module.code
    assert not module.training  # compiled for inference; .train() to train


@pytest.mark.parametrize(("spec", "inputs"), [("resnet18", {"image": (3, 64, 64)}), ("unet", {"image": (1, 188, 188)}),
                                             ("googlenet", {"image": (3, 96, 96)})])
def test_block_instances_are_modules_that_hooks_see_and_that_run_alone(spec: str,
                                                                       inputs: dict[str, tuple[int, ...]]) -> None:
    """Every block instance and repeat is a module with a forward: a hook on it fires, and calling it
    alone on what the hook saw gives what the hook saw (without touching the caller's tensors)."""
    network = cnndsl.load(ROOT / "specs" / f"{spec}.cnn", inputs=inputs)
    module = network.to_torch()
    containers = {name: sub for name, sub in module.named_modules()
                  if name and (isinstance(sub, torch.fx.GraphModule | nn.Sequential))}
    assert set(containers) == {name for name in network.graph.instances
                               if any(node.startswith(name + ".") for node in network.graph.dag)}
    seen: dict[str, tuple[tuple[torch.Tensor, ...], torch.Tensor]] = {}
    for name, sub in containers.items():
        sub.register_forward_hook(lambda _, args, out, name=name: seen.__setitem__(
            name, (tuple(a.clone() for a in args), out.clone())))
    with torch.no_grad():
        module(*example_inputs(network.graph, batch=2))
        assert set(seen) == set(containers)  # googlenet's auxiliary heads run in training mode only: none here
        for name, (args, out) in seen.items():
            given = tuple(a.clone() for a in args)
            torch.testing.assert_close(containers[name](*given), out, rtol=0, atol=0)
            assert all(torch.equal(a, b) for a, b in zip(given, args, strict=True)), f"{name} wrote to its input"


def test_weights_round_trip_and_mismatches_are_located(specs: SpecFiles, tmp_path: Path) -> None:
    text = "input x: 3 x 8 x 8\noutput y = x -> conv(4, 3) -> batchnorm -> relu -> flatten -> linear(5)\n"
    network = specs.load(text)
    trained = network.to_torch(seed=3)
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    loaded = network.to_torch(seed=4, weights=tmp_path / "w.pt")
    (x,) = example_inputs(network.graph, batch=2)
    assert torch.equal(trained(x), loaded(x))

    other = specs.load(text.replace("conv(4, 3)", "conv(6, 3)"), name="other.cnn")
    with pytest.raises(SpecError) as info:
        other.to_torch(weights=tmp_path / "w.pt")
    first = info.value.diagnostics[0]
    assert first.code == "E601" and first.location is not None and first.location.line == 2
    assert "`conv1.weight` in" in first.message and "6 x 3 x 3 x 3" in first.message

    (tmp_path / "junk.pt").write_bytes(b"not a state dict")
    with pytest.raises(SpecError, match="not a PyTorch state_dict"):
        network.to_torch(weights=tmp_path / "junk.pt")
    with pytest.raises(UsageError):
        network.to_torch(weights=tmp_path / "missing.pt")


def test_asymmetric_padding_pads_each_axis_on_its_own_sides(specs: SpecFiles) -> None:
    network = specs.load("input x: 2 x 6 x 7\noutput y = x -> conv(3, (3, 2), padding=((0, 1), (2, 0))) as probe\n")
    module = network.to_torch()
    (x,) = example_inputs(network.graph, batch=2)
    padded = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (0, 1), (2, 0))))  # numpy's per-axis order
    expected = F.conv2d(padded, module.probe.weight, module.probe.bias)
    torch.testing.assert_close(module(x), expected)


def test_locally_connected_with_shared_weights_is_a_convolution() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=2)
    x = torch.randn(2, 3, 11, 9)
    out = conv(x).shape[2:]
    local = LocallyConnected(3, 4, tuple(out), (3, 3), (2, 2), ((1, 1), (1, 1)), (2, 2), bias=True)
    with torch.no_grad():
        local.weight.copy_(conv.weight.flatten(1)[:, None, None, :].expand_as(local.weight))
        local.bias.copy_(conv.bias[:, None, None].expand_as(local.bias))
    torch.testing.assert_close(local(x), conv(x))


def test_locally_connected_uses_a_separate_weight_at_every_position() -> None:
    torch.manual_seed(0)
    local = LocallyConnected(2, 3, (4,), (3,), (2,), ((1, 0),), (1,), bias=True)
    x = torch.randn(2, 2, 8)
    padded = F.pad(x, (1, 0))
    expected = torch.stack([torch.einsum("nck,ock->no", padded[:, :, 2 * j:2 * j + 3],
                                         local.weight[:, j].reshape(3, 2, 3)) + local.bias[:, j]
                            for j in range(4)], dim=2)
    torch.testing.assert_close(local(x), expected)


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_asymmetric_average_pooling_counts_padding_as_asked(count_include_pad: bool) -> None:
    x = torch.randn(1, 1, 5)
    pool = PaddedAvgPool(1, ((0, 1),), (2,), (2,), False, count_include_pad)
    windows = [x[0, 0, 0:2], x[0, 0, 2:4], x[0, 0, 4:5]]
    expected = [w.sum() / (2 if count_include_pad else len(w)) for w in windows]
    torch.testing.assert_close(pool(x)[0, 0], torch.stack(expected))


def test_in_place_only_where_nothing_else_reads_the_tensor(specs: SpecFiles) -> None:
    network = specs.load("input x: 2 x 8 x 8\n"
                         "a = x -> relu\n"
                         "b = x -> conv(4, 3, padding=1) -> tanh -> relu\n"
                         "c = x -> conv(2, 3, padding=1) -> relu\n"
                         "output y = [b, c] -> concat\n"
                         "output z = a\n")
    module = network.to_torch().train()
    assert (module.relu1.inplace, module.relu2.inplace, module.relu3.inplace) == (False, False, True)
    x = torch.randn(2, 2, 8, 8, requires_grad=True)
    before = x.detach().clone()
    y, z = module(x)
    (y.sum() + z.sum()).backward()  # tanh keeps its output for backward: overwriting it would fail here
    assert torch.equal(x.detach(), before) and x.grad is not None


@pytest.mark.parametrize(("a", "b", "op"), [((8, 4, 4), (8, 1, 1), "mul"), ((1, 4, 4), (8, 1, 1), "add"),
                                             ((4, 5), (8, 1, 5), "mul")])
def test_broadcasting_merges_compute_numpys_broadcast(specs: SpecFiles, a: tuple[int, ...], b: tuple[int, ...],
                                                      op: str) -> None:
    def shape(dims: tuple[int, ...]) -> str:
        return " x ".join(map(str, dims))

    module = specs.load(f"input a: {shape(a)}\ninput b: {shape(b)}\noutput y = [a, b] -> {op}\n").to_torch()
    x, y = torch.randn(2, *a), torch.randn(2, *b)
    aligned = x.reshape(2, *(1,) * (len(b) - len(a)), *a)  # numpy aligns the per-sample shapes at the end
    with torch.no_grad():
        assert torch.equal(module(x, y), aligned * y if op == "mul" else aligned + y)


def test_a_broadcast_input_is_not_overwritten_in_place(specs: SpecFiles) -> None:
    """`[g, x] -> add` with a gate g of 8 x 1 x 1 first: the sum (8 x 4 x 4) cannot be written into g."""
    network = specs.load("input x: 8 x 4 x 4\ninput b: 8 x 1 x 1\ng = b -> conv(8, 1)\n"
                         "output y = [g, x] -> add -> relu\n")
    module = network.to_torch()
    assert not module.add1.inplace and module.relu1.inplace
    x, b = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 1, 1)
    with torch.no_grad():
        assert torch.allclose(module(x, b), torch.relu(module.conv1(b) + x))


def test_in_place_only_where_the_backward_allows_it(specs: SpecFiles) -> None:
    """Each op declares whether PyTorch may compute it in place; a training step through all of them must
    not trip autograd's check for overwritten saved tensors."""
    network = specs.load("input x: 3 x 8 x 8\n"
                         "c = x -> conv(8, 3, padding=1) -> hardswish -> conv(8, 3, padding=1)\n"
                         "g = c -> global_avgpool -> conv(8, 1) -> hardsigmoid\n"
                         "m = [c, g] -> mul -> mish\n"
                         "output y = m -> conv(8, 1) -> relu6 -> conv(8, 1) -> elu -> conv(8, 1) -> prelu\n")
    module = network.to_torch().train()
    assert (module.hardswish1.inplace, module.relu61.inplace, module.elu1.inplace) == (True, True, True)
    assert not (module.mul1.inplace or module.mish1.inplace or module.hardsigmoid1.inplace)
    module(torch.randn(2, 3, 8, 8)).square().sum().backward()
    assert all(p.grad is not None for p in module.parameters())


def test_channel_split_and_shuffle_compute_shufflenets(specs: SpecFiles) -> None:
    """ShuffleNet v2's unit without its convolutions: halves by `slice`, concatenated, shuffled in two
    groups, against torchvision's `channel_shuffle` (view, transpose, flatten) and `chunk`."""
    network = specs.load("input x: 8 x 3 x 3\nleft = x -> slice(0, channels(x) // 2)\n"
                         "right = x -> slice(channels(x) // 2, channels(x)) -> relu\n"
                         "output y = [left, right] -> concat -> channel_shuffle(2)\n")
    x = torch.randn(2, 8, 3, 3)
    left, right = x.chunk(2, dim=1)
    joined = torch.cat([left, torch.relu(right)], dim=1)
    expected = joined.view(2, 2, 4, 3, 3).transpose(1, 2).contiguous().view(2, 8, 3, 3)
    with torch.no_grad():
        assert torch.equal(network.to_torch()(x), expected)


def test_convnext_parts_compute_what_torchvision_computes(specs: SpecFiles) -> None:
    """`layernorm(over=channels)` is torchvision's LayerNorm2d (permute, layer norm over C, permute back);
    `scale` multiplies each channel; `drop_path` is StochasticDepth(mode="row"): whole samples dropped in
    training, scaled by 1 / (1 - p), the identity in eval mode."""
    module = specs.load("input x: 8 x 5 x 5\n"
                        "output y = x -> layernorm(over=channels, eps=1e-6) -> scale(init=0.5) -> drop_path(0.5)\n"
                        ).to_torch()
    x = torch.randn(64, 8, 5, 5)
    norm = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (8,), eps=1e-6).permute(0, 3, 1, 2)
    with torch.no_grad():
        assert torch.allclose(module(x), norm * 0.5, atol=1e-6)
        module.train()
        y = module(x)
    kept = [bool(y[i].abs().sum() > 0) for i in range(64)]
    assert 10 < sum(kept) < 54  # about half of the samples survive
    assert all(torch.allclose(y[i], norm[i], atol=1e-5) for i in range(64) if kept[i])  # 0.5 scale / (1 - 0.5)

    mlp = specs.load("input x: 8 x 5 x 5\noutput y = x -> linear(12, over=channels) as fc\n", name="mlp.cnn").to_torch()
    assert tuple(mlp.state_dict()["fc.weight"].shape) == (12, 8)  # nn.Linear's weights, not a 1x1 convolution's
    with torch.no_grad():
        expected = torch.nn.functional.linear(x.permute(0, 2, 3, 1), mlp.fc.weight, mlp.fc.bias).permute(0, 3, 1, 2)
        assert torch.allclose(mlp(x), expected, atol=1e-6)
