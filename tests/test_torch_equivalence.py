"""The compiled modules against PyTorch networks written the ordinary way (torchvision's layout):
copy the weights across by position, then the outputs and state_dict shapes must be identical."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import cnndsl
from cnndsl import SpecError, UsageError
from cnndsl.backends.torch.export import example_inputs
from tests.conftest import ROOT
from tests.reference_nets import (
    RESNETS,
    VGG,
    VGG16,
    VGG_CONFIGS,
    AlexNet,
    ConvNeXtTiny,
    DenseNet,
    EfficientNetV2S,
    GoogLeNet,
    LeNet5,
    MobileNetV2,
    MobileNetV3,
    ResNet,
    ResNet18,
    ShuffleNetV2,
    SqueezeNet,
    UNet,
)
from tests.torch_counts import weight_macs

# The bundled specs whose names are torchvision's (`as` names, numbered blocks, `x n for i` repeats).
NAMED_AS_TORCHVISION = {"vgg16", "resnet18", "mobilenet_v2", "squeezenet1_0", "squeezenet1_1", "shufflenet_v2_x1_0",
                        "googlenet", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_v2_s", "densenet121",
                        "densenet169"}


def copy_by_position(source: nn.Module, target: nn.Module) -> None:
    """Copy every state_dict tensor of `source` into `target` in order; their shapes must agree."""
    ours, theirs = target.state_dict(), source.state_dict()
    assert [tuple(t.shape) for t in ours.values()] == [tuple(t.shape) for t in theirs.values()]
    target.load_state_dict(dict(zip(ours, theirs.values(), strict=True)))


def randomise_batch_norm_statistics(module: nn.Module) -> None:
    """Running statistics start at 0 and 1, which would hide a mixed-up mean and variance."""
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 1.5)


@pytest.mark.parametrize(("spec", "reference", "batch"), [
    ("lenet5", LeNet5, 4), ("vgg16", VGG16, 1), ("resnet18", ResNet18, 2), ("unet", UNet, 1),
    ("mobilenet_v2", MobileNetV2, 2), ("squeezenet1_0", lambda: SqueezeNet("1_0"), 1),
    ("squeezenet1_1", lambda: SqueezeNet("1_1"), 1), ("shufflenet_v2_x1_0", ShuffleNetV2, 2),
    ("densenet121", DenseNet, 1), ("mobilenet_v3_large", MobileNetV3, 2),
    ("mobilenet_v3_small", lambda: MobileNetV3("small"), 2), ("efficientnet_v2_s", EfficientNetV2S, 1),
    ("googlenet", GoogLeNet, 2),
    pytest.param("densenet169", lambda: DenseNet((6, 12, 32, 32)), 1, marks=pytest.mark.slow),
], ids=["lenet5", "vgg16", "resnet18", "unet", "mobilenet_v2", "squeezenet1_0", "squeezenet1_1", "shufflenet_v2",
        "densenet121", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_v2_s", "googlenet", "densenet169"])
def test_compiled_module_equals_the_hand_written_one(spec: str, reference: Callable[[], nn.Module],
                                                     batch: int) -> None:
    """Specs named as torchvision names its modules load the reference's state_dict strictly, both ways;
    the others take its tensors in order."""
    smaller = {"efficientnet_v2_s": {"image": (3, 128, 128)}, "googlenet": {"image": (3, 96, 96)}}
    network = cnndsl.load(ROOT / "specs" / f"{spec}.cnn", inputs=smaller.get(spec))
    torch.manual_seed(0)
    ref = reference().eval()
    randomise_batch_norm_statistics(ref)
    ours = network.to_torch(seed=1)
    if spec in NAMED_AS_TORCHVISION:
        assert list(ours.state_dict()) == list(ref.state_dict())
        ours.load_state_dict(ref.state_dict(), strict=True)
        reference().load_state_dict(ours.state_dict(), strict=True)
    else:
        copy_by_position(ref, ours)
    inputs = example_inputs(network.graph, batch=batch)
    with torch.no_grad():
        torch.testing.assert_close(ours(*inputs), ref(*inputs), rtol=0, atol=1e-5)
    if spec == "resnet18":  # training mode too: batch statistics and their running updates
        ours.train(), ref.train()
        torch.testing.assert_close(ours(*inputs), ref(*inputs), rtol=0, atol=1e-5)
        for a, b in zip(ours.state_dict().values(), ref.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("spec", [pytest.param(name, marks=[pytest.mark.slow] * (name in ("resnet101", "resnet152")))
                                  for name in RESNETS])
def test_torchvision_checkpoints_load_strictly_and_give_the_same_outputs(spec: str, tmp_path: Path) -> None:
    """The bundled ResNets name their layers as torchvision does (`as` names, `x n for i` repeats numbered
    from 0, `resnet(...) as _`): a torchvision-layout state_dict loads with strict=True, through
    `to_torch(weights=...)` too, and the compiled module's state_dict loads into torchvision's layout."""
    block, layers = RESNETS[spec]
    network = cnndsl.load(ROOT / "specs" / f"{spec}.cnn", inputs={"image": (3, 64, 64)})
    torch.manual_seed(0)
    ref = ResNet(block, layers).eval()
    randomise_batch_norm_statistics(ref)
    ours = network.to_torch(seed=1)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    torch.save(ref.state_dict(), tmp_path / "torchvision.pt")
    loaded = network.to_torch(weights=tmp_path / "torchvision.pt")
    ResNet(block, layers).load_state_dict(ours.state_dict(), strict=True)
    inputs = example_inputs(network.graph, batch=2)
    with torch.no_grad():
        expected = ref(*inputs)
        torch.testing.assert_close(ours(*inputs), expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(loaded(*inputs), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("spec", [pytest.param(f"{name}{bn}", marks=[pytest.mark.slow] * (f"{name}{bn}" != "vgg11_bn"))
                                  for name in VGG_CONFIGS for bn in ("", "_bn")] + ["alexnet"])
def test_torchvision_vgg_and_alexnet_checkpoints_load_strictly(spec: str) -> None:
    """Every VGG (numbered `features` filled by unnamed stages) and AlexNet: torchvision's keys, both ways."""
    network = cnndsl.load(ROOT / "specs" / f"{spec}.cnn", inputs={"image": (3, 64, 64)})
    torch.manual_seed(0)
    ref = AlexNet() if spec == "alexnet" else VGG(VGG_CONFIGS[spec.removesuffix("_bn")], bn=spec.endswith("_bn"))
    ref.eval()
    randomise_batch_norm_statistics(ref)
    ours = network.to_torch(seed=1)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.load_state_dict(ours.state_dict(), strict=True)  # and the other way
    inputs = example_inputs(network.graph, batch=2)
    with torch.no_grad():
        torch.testing.assert_close(ours(*inputs), ref(*inputs), rtol=0, atol=1e-5)


def test_convnext_loads_torchvisions_checkpoint_with_its_one_rename(tmp_path: Path) -> None:
    """ConvNeXt-T's names are torchvision's but for the layer scale, a bare parameter of torchvision's
    block and a layer's weight here: one weights-map rule, then the checkpoint loads strictly and the
    outputs agree (its MLP is nn.Linear on channels-last tensors in both)."""
    network = cnndsl.load(ROOT / "specs" / "convnext_tiny.cnn", inputs={"image": (3, 64, 64)})
    torch.manual_seed(0)
    ref = ConvNeXtTiny().eval()
    for name, parameter in ref.named_parameters():
        if name.endswith("layer_scale"):
            parameter.data.uniform_(0.5, 1.5)  # 1e-6 would hide a wrong residual branch
    ours = network.to_torch(seed=1)
    rename = [r"layer_scale$=layer_scale.weight"]
    assert sorted(ours.state_dict()) == sorted(re.sub(r"layer_scale$", "layer_scale.weight", key)
                                               for key in ref.state_dict())
    torch.save(ref.state_dict(), tmp_path / "convnext.pt")
    loaded = network.to_torch(weights=tmp_path / "convnext.pt", weights_map=rename)
    x = example_inputs(network.graph, batch=2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*x), ref(*x), rtol=0, atol=1e-4)


@pytest.mark.parametrize(("spec", "reference", "size"), [
    ("mobilenet_v2", MobileNetV2, 224), ("mobilenet_v3_large", MobileNetV3, 224),
    ("mobilenet_v3_small", lambda: MobileNetV3("small"), 224), ("squeezenet1_0", lambda: SqueezeNet("1_0"), 224),
    ("squeezenet1_1", lambda: SqueezeNet("1_1"), 224), ("shufflenet_v2_x1_0", ShuffleNetV2, 224),
    ("densenet121", DenseNet, 224), ("densenet169", lambda: DenseNet((6, 12, 32, 32)), 224),
    ("convnext_tiny", ConvNeXtTiny, 224), ("efficientnet_v2_s", EfficientNetV2S, 384),
], ids=lambda value: value if isinstance(value, str) else "")
def test_zoo_counts_equal_pytorch_hooks(spec: str, reference: Callable[[], nn.Module], size: int) -> None:
    """The report's parameters and MACs against the hand-written torchvision-layout module, counted by hooks
    at the spec's input size: an outside check of the figures in docs/fidelity.md."""
    totals = cnndsl.load(ROOT / "specs" / f"{spec}.cnn").report().totals
    assert (totals.params, totals.macs) == weight_macs(reference(), torch.zeros(1, 3, size, size))


def test_a_weights_map_loads_a_checkpoint_saved_in_another_layout(tmp_path: Path) -> None:
    """DataParallel's `module.` prefix stripped, tensors the spec does not have (torchvision's GoogLeNet
    checkpoint keeps its auxiliary heads) left out; what still does not fit is a located E601."""
    network = cnndsl.load(ROOT / "specs" / "resnet18.cnn", inputs={"image": (3, 64, 64)})
    torch.manual_seed(0)
    ref = ResNet18().eval()
    state = {f"module.{key}": value for key, value in ref.state_dict().items()}
    state["module.aux1.fc1.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "parallel.pt")
    with pytest.raises(SpecError) as info:
        network.to_torch(weights=tmp_path / "parallel.pt")
    assert "has no `conv1.weight`" in info.value.diagnostics[0].message
    ours = network.to_torch(weights=tmp_path / "parallel.pt", weights_map=[r"^module\.=", r"-^aux\d\."])
    (x,) = example_inputs(network.graph, batch=2)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-5)
    by_function = network.to_torch(weights=tmp_path / "parallel.pt",
                                   weights_map=lambda key: None if ".aux1." in f".{key}" else key[len("module."):])
    assert all(torch.equal(a, b) for a, b in zip(by_function.state_dict().values(), ours.state_dict().values(),
                                                  strict=True))

    with pytest.raises(SpecError) as info:
        network.to_torch(weights=tmp_path / "parallel.pt", weights_map=[r"^module\.=", r"aux1\.fc1=conv1"])
    messages = [d.message for d in info.value.diagnostics]
    assert any("`module.conv1.weight` and `module.aux1.fc1.weight`" in m and "both map to `conv1.weight`" in m
               for m in messages), messages
    with pytest.raises(UsageError, match="not PATTERN=REPLACEMENT"):
        network.to_torch(weights=tmp_path / "parallel.pt", weights_map=["module"])
    with pytest.raises(UsageError, match="invalid group reference"):
        network.to_torch(weights=tmp_path / "parallel.pt", weights_map=[r"^module\.=\2"])


def test_compile_takes_a_weights_map_from_the_command_line_and_a_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cnndsl.cli import main

    torch.save({f"backbone.{key}": value for key, value in ResNet18().state_dict().items()}, tmp_path / "w.pt")
    (tmp_path / "rules.txt").write_text("# torchvision checkpoint inside a detector\n^backbone\\.=\n")
    spec = str(ROOT / "specs" / "resnet18.cnn")
    for rules in (["--weights-map", r"^backbone\.="], ["--weights-map", f"@{tmp_path / 'rules.txt'}"]):
        result = CliRunner().invoke(main, ["compile", spec, "--weights", str(tmp_path / "w.pt"), *rules,
                                           "-o", str(tmp_path / "r.pt2")])
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["compile", spec, "--weights", str(tmp_path / "w.pt"), "-o",
                                       str(tmp_path / "r.pt2")])
    assert result.exit_code == 1 and "E601" in result.output
    result = CliRunner().invoke(main, ["compile", spec, "--weights-map", "a=b"])
    assert result.exit_code == 2 and "give --weights too" in result.output
