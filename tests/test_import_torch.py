"""`cnndsl import torch`: real torchvision models and small modules written for the cases, imported through
torch.fx. Each import is checked by the importer itself (its state_dict loads strictly into the compiled
spec, outputs equal) and here again from outside: parameters against `sum(p.numel())`, MACs against
forward hooks on the torchvision module, the text unchanged by `cnndsl fmt`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from click.testing import CliRunner
from torch import nn
from torch.nn import functional as F

import cnndsl
from cnndsl.api import import_torch
from cnndsl.cli import main
from cnndsl.diagnostics import SpecError
from cnndsl.syntax.fmt import format_text
from tests.torch_counts import weight_macs

# A few families in the edit loop, one of each other family in the slow tier.
FAST = ["resnet18", "alexnet", "squeezenet1_1", "mobilenet_v3_small", "shufflenet_v2_x0_5", "googlenet",
        "mnasnet0_5", "efficientnet_b0", "regnet_x_400mf"]
# Refused, each with the part of it a spec cannot say (attention's class token, layer norm over tokens,
# window partitions)
REFUSED = {"vit_b_16": "Tensor.expand", "vit_b_32": "Tensor.expand", "vit_l_16": "Tensor.expand",
           "vit_l_32": "Tensor.expand", "vit_h_14": "Tensor.expand", "swin_t": "attn", "swin_s": "attn",
           "swin_b": "attn", "swin_v2_t": "attn", "swin_v2_s": "attn", "swin_v2_b": "attn",
           "maxvit_t": "permutation"}
CLASSIFIERS = torchvision.models.list_models(module=torchvision.models)
# one of each family more in the slow tier (all 80: benchmarks/import_torchvision.py, docs/import.md's table;
# the whole list takes 20 minutes on one core, a fifth of CI's time)
SLOW = ["resnet50", "resnext50_32x4d", "wide_resnet50_2", "vgg16_bn", "densenet121", "inception_v3",
        "mobilenet_v2", "mobilenet_v3_large", "efficientnet_v2_s", "regnet_y_400mf", "mnasnet1_0",
        "shufflenet_v2_x1_0", "squeezenet1_0", "convnext_tiny"]


def input_size(name: str) -> int:
    return 299 if name == "inception_v3" else 224


def check_import(name: str) -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model(name).eval()
    size = input_size(name)
    imported = import_torch(model, {"image": (3, size, size)}, name=name)
    totals = imported.network.report().totals
    left_out = [note.split()[0] for note in imported.notes if "training-only" in note]
    params, macs = weight_macs(model, torch.zeros(1, 3, size, size))
    params -= sum(p.numel() for module in left_out for p in model.get_submodule(module).parameters())
    assert (totals.params, totals.macs) == (params, macs)
    assert imported.max_difference is not None and imported.max_difference <= 1e-5
    assert format_text(imported.text, f"{name}.cnn") == imported.text


@pytest.mark.parametrize("name", FAST)
def test_torchvision_models_import_exactly(name: str) -> None:
    check_import(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_every_torchvision_classifier_imports_exactly(name: str) -> None:
    check_import(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vit_b_16", "swin_t", "maxvit_t"])
def test_torchvision_models_a_spec_cannot_say_are_refused_by_their_part(name: str) -> None:
    model = torchvision.models.get_model(name).eval()
    with pytest.raises(SpecError) as info:
        import_torch(model, {"image": (3, 224, 224)}, name=name)
    error = info.value.diagnostics[0]
    assert error.code == "E703" and REFUSED[name] in error.message


@pytest.mark.parametrize("name", ["deeplabv3_mobilenet_v3_large",
                                  pytest.param("fcn_resnet50", marks=pytest.mark.slow),
                                  pytest.param("deeplabv3_resnet50", marks=pytest.mark.slow)])
def test_segmentation_models_import_exactly(name: str) -> None:
    """Dilated backbones, ASPP (a ModuleList of branches that its parent concatenates: the concatenation is
    taken into the block), outputs up-sampled to the input's size; the dict output becomes `out`."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights_backbone=None).eval()
    imported = import_torch(model, {"image": (3, 128, 128)}, name=name)
    assert imported.network.report().totals.params == sum(p.numel() for p in model.parameters())
    assert imported.max_difference is not None and imported.max_difference <= 1e-5
    assert list(imported.network.report().outputs.values()) == [[21, 128, 128]]


def test_a_module_returning_two_tensors_to_different_readers_is_refused() -> None:
    """LR-ASPP's backbone returns its low and high features to two different heads: a block returns one."""
    model = torchvision.models.get_model("lraspp_mobilenet_v3_large", weights_backbone=None).eval()
    with pytest.raises(SpecError) as info:
        import_torch(model, {"image": (3, 128, 128)})
    assert info.value.diagnostics[0].code == "E703" and "returns 2 tensors" in info.value.diagnostics[0].message


def test_a_resnet_reads_as_blocks_and_repeats() -> None:
    text = import_torch(torchvision.models.resnet50(), {"image": (3, 224, 224)}, name="resnet50").text
    assert "block bottleneck(" in text and "layer1" in text
    assert len(text.splitlines()) < 90  # 170 layers, written as blocks
    net = import_torch(torchvision.models.resnet18(), {"image": (3, 64, 64)}, name="r18").network
    assert "basic_block(64) x 2 as layer1" in import_torch(torchvision.models.resnet18(), {"image": (3, 64, 64)}).text
    names = {layer.name for layer in net.report().layers}
    assert {"conv1", "layer1.0.conv1", "layer2.0.downsample.0", "fc"} <= names


# ---- small modules: what each construct becomes --------------------------------------------------------------
class Functional(nn.Module):
    """Functions and methods instead of modules: relu, cat, chunk, view with a size, mean, interpolate,
    a channel shuffle written with view and transpose."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(x))
        a, b = y.chunk(2, dim=1)
        y = torch.cat([b, a], dim=1)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        y = F.interpolate(y, scale_factor=2, mode="nearest")
        y = F.max_pool2d(y, 2)
        return self.head(y.mean([2, 3]))


class SharedWeights(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.inner(x))


class DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.relu() if x.sum() > 0 else x


class Constant(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * 0.5


class Permuted(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


def test_functions_and_methods_become_ops() -> None:
    imported = import_torch(Functional(), {"x": (3, 16, 16)})
    ops = [layer.op for layer in imported.network.report().layers]
    assert ops == ["conv2d", "relu", "slice", "slice", "concat", "channel_shuffle", "upsample_nearest", "maxpool2d",
                   "global_avgpool", "flatten", "linear"]
    assert imported.max_difference is not None and imported.max_difference <= 1e-5


@pytest.mark.parametrize(("module", "message"), [
    (SharedWeights(), "runs twice"),
    (DataDependent(), "torch.fx cannot trace"),
    (Constant(), "with a constant"),
    (Permuted(), "permutation of the axes"),
], ids=["shared-weights", "data-dependent", "constant-factor", "permute"])
def test_what_a_spec_cannot_say_is_a_located_error(module: nn.Module, message: str) -> None:
    with pytest.raises(SpecError) as info:
        import_torch(module, {"x": (3, 8, 8)})
    error = info.value.diagnostics[0]
    assert error.code == "E703" and message in error.message and error.hint


def test_a_translation_that_changes_the_network_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The verifier's own test: a converter that writes the wrong op (sigmoid for ReLU: same parameters,
    other outputs) makes the import fail with E704 rather than write a different network."""
    from cnndsl.importers import pytorch

    monkeypatch.setitem(pytorch.MODULES, nn.ReLU, pytorch._simple("sigmoid"))
    with pytest.raises(SpecError) as info:
        import_torch(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), {"x": (3, 8, 8)})
    assert info.value.diagnostics[0].code == "E704" and "outputs differ" in info.value.diagnostics[0].message


# ---- the command -------------------------------------------------------------------------------------------
def test_the_command_writes_a_checked_verified_spec(tmp_path: Path) -> None:
    out = tmp_path / "r18.cnn"
    result = CliRunner().invoke(main, ["import", "torch", "torchvision.models:resnet18", "--input", "image=3x64x64",
                                       "--args", json.dumps({"num_classes": 10}), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "11,181,642 parameters (PyTorch: 11,181,642)" in result.output and "verified" in result.output
    assert cnndsl.load(out).report().totals.params == 11_181_642
    again = CliRunner().invoke(main, ["import", "torch", "torchvision.models:resnet18", "--input", "image=3x64x64",
                                      "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.output


@pytest.mark.parametrize(("arguments", "code", "text"), [
    (["torchvision.models:no_such_model", "--input", "image=3x64x64"], "E705", "cannot find"),
    (["resnet18", "--input", "image=3x64x64"], "E705", "MODULE:CALLABLE"),
    (["torchvision.models:resnet18", "--input", "image=3x64x64", "--args", "{num_classes: 10}"], "E705", "JSON"),
    (["torchvision.models:resnet18", "--input", "image=3x64"], "E705", "does not run on"),
    (["torchvision.models:resnet18", "--input", "image=3xbig"], "E705", "NAME=SHAPE"),
    (["torchvision.models:vit_b_16", "--input", "image=3x224x224"], "E703", "Tensor.expand"),
], ids=["missing", "no-colon", "bad-json", "wrong-shape", "bad-shape", "refused"])
def test_the_command_reports_bad_input_as_located_errors(tmp_path: Path, arguments: list[str], code: str,
                                                         text: str) -> None:
    result = CliRunner().invoke(main, ["import", "torch", *arguments, "-o", str(tmp_path / "x.cnn")])
    assert result.exit_code == 1, result.output
    assert f"error[{code}]" in result.output and text in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.cnn").exists()
