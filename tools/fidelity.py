"""The fidelity table: every bundled spec's figures against the published (or independently derived)
ones: papers, torchvision's documentation, Darknet's logs, each row naming its source.
`python tools/fidelity.py` writes docs/fidelity.md; the test suite
asserts every row matches and that the committed document is current.

A published figure is an int (exact) or a rounded string ("1.498 G", "134 M"): a rounded figure
matches when ours rounds to it at the precision it was published with.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cnndsl  # noqa: E402

TORCHVISION = "torchvision `meta` (num_params, _ops; MACs recomputed exactly with PyTorch hooks)"
DERIVED = "derived by hand from the layer definitions"
NOTES = "the course notes"


@dataclass(frozen=True)
class Figure:
    network: str  # spec name in specs/
    quantity: str  # see measure()
    published: int | str | tuple[int, ...]
    source: str


def _vgg(name: str, params: int, macs: int) -> list[Figure]:
    return [Figure(name, "params", params, TORCHVISION), Figure(name, "macs", macs, TORCHVISION)]


FIGURES: list[Figure] = [
    Figure("mnist1d", "params", 2_050, NOTES + " (torchinfo table)"),
    Figure("mnist1d", "macs:torchinfo@100", 1_072_000, NOTES + " (torchinfo table: 1.07 M at batch 100)"),
    Figure("mnist1d", "macs", 10_230, DERIVED),
    Figure("mnist1d", "output:logits", (10,), NOTES),
    Figure("lenet5", "params", 61_706, DERIVED + ", the modern variant"),
    Figure("lenet5", "shape:c1", (6, 28, 28), "LeCun et al. 1998"),
    Figure("lenet5", "shape:s4", (16, 5, 5), "LeCun et al. 1998"),
    Figure("lenet5", "output:logits", (10,), "LeCun et al. 1998"),
    Figure("alexnet", "params", 61_100_840, TORCHVISION),
    Figure("alexnet", "macs", 714_188_480, TORCHVISION),
    Figure("alexnet", "rf:features.12", (195, 32, 66), DERIVED + " (the last max pool)"),
    *_vgg("vgg11", 132_863_336, 7_609_090_048), *_vgg("vgg11_bn", 132_868_840, 7_609_090_048),
    *_vgg("vgg13", 133_047_848, 11_308_466_176), *_vgg("vgg13_bn", 133_053_736, 11_308_466_176),
    *_vgg("vgg16", 138_357_544, 15_470_264_320), *_vgg("vgg16_bn", 138_365_992, 15_470_264_320),
    *_vgg("vgg19", 143_667_240, 19_632_062_464), *_vgg("vgg19_bn", 143_678_248, 19_632_062_464),
    *[Figure("vgg16", f"rf:features.{pool}", rf, "google-research receptive_field library table")
      for pool, rf in zip((4, 9, 16, 23, 30), [(6, 2, 2), (16, 4, 6), (44, 8, 18), (100, 16, 42), (212, 32, 90)],
                          strict=True)],
    Figure("googlenet", "params", 6_624_904, TORCHVISION),
    Figure("googlenet", "macs", "1.498 G", TORCHVISION + " (docs: 1.50 GFLOPS)"),
    Figure("resnet18", "params", 11_689_512, TORCHVISION),
    Figure("resnet18", "macs", 1_814_073_344, TORCHVISION),
    Figure("resnet34", "params", 21_797_672, TORCHVISION),
    Figure("resnet34", "macs", 3_663_761_408, TORCHVISION),
    Figure("resnet50", "params", 25_557_032, TORCHVISION),
    Figure("resnet50", "macs", 4_089_184_256, TORCHVISION),
    Figure("resnet50", "macs:torchinfo", 4_089_238_376, "torchinfo 1.8 summary (measured)"),
    *[Figure("resnet50", f"rf:{point}", rf, DERIVED) for point, rf in [
        ("layer1.2.relu3", (35, 4, 17)), ("layer2.3.relu3", (91, 8, 45)),
        ("layer3.5.relu3", (267, 16, 133)), ("layer4.2.relu3", (427, 32, 213))]],
    Figure("resnet50_v1", "macs", 3_857_973_248, DERIVED + "; He et al. 2015: 3.8 G"),
    Figure("resnet101", "params", 44_549_160, TORCHVISION),
    Figure("resnet101", "macs", 7_801_405_440, TORCHVISION),
    Figure("resnet101_v1", "macs", 7_570_194_432, DERIVED + "; He et al. 2015: 7.6 G"),
    Figure("resnet152", "params", 60_192_808, TORCHVISION),
    Figure("resnet152", "macs", 11_513_626_624, TORCHVISION),
    Figure("resnet152", "macs:torchinfo", 11_513_779_048, "torchinfo 1.8 summary (measured)"),
    Figure("resnet152_v1", "macs", 11_282_415_616, DERIVED + "; He et al. 2015: 11.3 G"),
    Figure("mobilenet_v1", "params", "4.2 M", "Howard et al. 2017, Table 8"),
    Figure("mobilenet_v1", "macs", "569 M", "Howard et al. 2017, Table 8 (mult-adds)"),
    Figure("mobilenet_v1", "shape:block13.pw", (1024, 7, 7), "Howard et al. 2017, Table 1"),
    Figure("mobilenet_v1", "count:conv2d", 27, "Howard et al. 2017, Table 1 (28 layers with the FC)"),
    Figure("mobilenet_v2", "params", 3_504_872, TORCHVISION),
    Figure("mobilenet_v2", "macs", 300_774_272, TORCHVISION + " (docs: 0.30 GFLOPS)"),
    Figure("mobilenet_v2", "shape:features.17.conv.3", (320, 7, 7), "Sandler et al. 2018, Table 2"),
    Figure("squeezenet1_0", "params", 1_248_424, TORCHVISION),
    Figure("squeezenet1_0", "macs", 818_924_576, TORCHVISION + " (docs: 0.82 GFLOPS)"),
    Figure("squeezenet1_0", "shape:features.12.concat1", (512, 13, 13), "Iandola et al. 2016, Table 1"),
    Figure("squeezenet1_1", "params", 1_235_496, TORCHVISION),
    Figure("squeezenet1_1", "macs", 349_151_936, TORCHVISION + " (docs: 0.35 GFLOPS)"),
    Figure("shufflenet_v2_x1_0", "params", 2_278_604, TORCHVISION),
    Figure("shufflenet_v2_x1_0", "macs", 144_907_992, TORCHVISION + " (docs: 0.14 GFLOPS)"),
    Figure("shufflenet_v2_x1_0", "shape:stage4.3.channel_shuffle1", (464, 7, 7), "Ma et al. 2018, Table 5"),
    Figure("densenet121", "params", 7_978_856, TORCHVISION),
    Figure("densenet121", "macs", 2_834_161_664, TORCHVISION + " (docs: 2.83 GFLOPS)"),
    Figure("densenet121", "shape:features.norm5", (1024, 7, 7), "Huang et al. 2017, Table 1"),
    Figure("densenet169", "params", 14_149_480, TORCHVISION),
    Figure("densenet169", "macs", 3_359_843_328, TORCHVISION + " (docs: 3.36 GFLOPS)"),
    Figure("mobilenet_v3_large", "params", 5_483_032, TORCHVISION),
    Figure("mobilenet_v3_large", "macs", 216_589_760, TORCHVISION + " (docs: 0.22 GFLOPS)"),
    Figure("mobilenet_v3_large", "shape:features.15.block.3.1", (160, 7, 7), "Howard et al. 2019, Table 1"),
    Figure("mobilenet_v3_small", "params", 2_542_856, TORCHVISION),
    Figure("mobilenet_v3_small", "macs", 56_510_400, TORCHVISION + " (docs: 0.06 GFLOPS)"),
    Figure("efficientnet_v2_s", "params", 21_458_488, TORCHVISION),
    Figure("efficientnet_v2_s", "macs", 8_365_617_152, TORCHVISION + " at 384 x 384 (docs: 8.37 GFLOPS)"),
    Figure("convnext_tiny", "params", 28_589_128, TORCHVISION),
    Figure("convnext_tiny", "macs", "4.46 G", "torchvision docs (4.46 GFLOPS; the MLP's linear layers count at "
           "every position)"),
    Figure("yolov1", "output:detections", (30, 7, 7), "Redmon et al. 2016: 7 x 7 x 30"),
    Figure("yolov1", "count:conv2d", 24, "Redmon et al. 2016"),
    Figure("yolov1", "count:linear", 2, "Redmon et al. 2016"),
    Figure("yolov1", "shape:linear2", (1470,), "Redmon et al. 2016"),
    Figure("fcn_resnet50", "params", 35_322_218, "torchvision's FCN_ResNet50_Weights (num_params, auxiliary head "
           "included); aux_loss=False: 32,957,013 (tests/test_segmentation.py)"),
    Figure("fcn_resnet50", "output:out", (21, 520, 520), "torchvision (logits at the input's size)"),
    Figure("fcn_resnet50", "output:aux", (21, 520, 520), "torchvision (the auxiliary logits, on layer3)"),
    Figure("deeplabv3_resnet50", "params", 42_004_074, "torchvision's DeepLabV3_ResNet50_Weights (num_params, "
           "auxiliary head included); aux_loss=False: 39,638,869 (tests/test_segmentation.py)"),
    Figure("deeplabv3_resnet50", "output:out", (21, 520, 520), "torchvision (logits at the input's size)"),
    Figure("deeplabv3_resnet50", "output:aux", (21, 520, 520), "torchvision (the auxiliary logits, on layer3)"),
    Figure("resnet50_fpn", "params", 26_799_296, "torchvision.models.detection.backbone_utils.resnet_fpn_backbone("
           "'resnet50'), sum of p.numel() (tests/test_detection.py)"),
    Figure("resnet50_fpn", "output:p2", (256, 200, 200), "torchvision (level '0', stride 4)"),
    Figure("resnet50_fpn", "output:p6", (256, 13, 13), "torchvision (level 'pool', stride 64)"),
    Figure("fcn32s", "trainable", "134 M", "Long et al. 2015, Table 1 (FCN-VGG16)"),
    Figure("fcn32s", "output:segmentation", (21, 500, 500), "Long et al. 2015 (input-sized score map)"),
    Figure("unet", "params", 31_030_658, DERIVED),
    Figure("unet", "output:mask", (2, 388, 388), "Ronneberger et al. 2015"),
    Figure("convnet83", "shape:conv1", (64, 75, 75), NOTES),
    Figure("convnet83", "shape:maxpool1", (64, 14, 14), NOTES),
    Figure("convnet83", "shape:conv2", (256, 6, 6), NOTES),
]

_UNITS = {"k": 1e3, "M": 1e6, "G": 1e9}


@cache
def network(name: str) -> cnndsl.Network:
    return cnndsl.load(ROOT / "specs" / f"{name}.cnn")


def measure(name: str, quantity: str) -> int | tuple[int, ...]:
    """params | trainable | macs | macs:CONVENTION[@BATCH] | output:NAME | shape:LAYER | rf:LAYER | count:OP"""
    net = network(name)
    kind, _, arg = quantity.partition(":")
    if kind in ("params", "trainable"):
        totals = net.report().totals
        return totals.params if kind == "params" else totals.trainable_params
    if kind == "macs":
        convention, _, batch = (arg or "torchvision").partition("@")
        return net.report(convention, int(batch or 1)).totals.macs
    if kind == "output":
        return tuple(net.report().outputs[arg])
    layers = {entry.name: entry for entry in net.report().layers}
    if kind == "shape":
        return tuple(layers[arg].shape)
    if kind == "rf":
        rf = layers[arg].rf
        assert rf is not None
        return (int(rf.size[0]), int(rf.stride[0]), int(rf.padding[0]))
    if kind == "count":
        return sum(1 for entry in layers.values() if entry.op == arg)
    raise ValueError(f"unknown quantity {quantity!r}")


def matches(ours: int | tuple[int, ...], published: int | str | tuple[int, ...]) -> bool:
    if not isinstance(published, str):
        return ours == published
    number, unit = published.split()
    decimals = len(number.partition(".")[2])
    assert isinstance(ours, int)
    return round(ours / _UNITS[unit], decimals) == float(number)


def _show(value: int | str | tuple[int, ...], separator: str = " x ") -> str:
    if isinstance(value, tuple):
        return separator.join(map(str, value))
    return f"{value:,}" if isinstance(value, int) else value


def _quantity_label(quantity: str) -> str:
    kind, _, arg = quantity.partition(":")
    if kind == "macs" and arg:
        return f"MACs ({arg.replace('@', ', batch ')})"
    return {"params": "parameters", "trainable": "trainable parameters", "macs": "MACs (torchvision)",
            "output": f"output `{arg}`", "shape": f"shape of `{arg}`", "rf": f"receptive field at `{arg}` (r / S / P)",
            "count": f"number of `{arg}` layers"}[kind]


def render() -> str:
    lines = ["# Fidelity: the bundled specs against published figures", "",
             "Generated by `python tools/fidelity.py` from `specs/` and the table in `tools/fidelity.py` (each row",
             "names its source); `make test` fails when this file is stale or a row does not match. A",
             "rounded published figure matches when ours rounds to it at the precision it was published with.", "",
             "| network | figure | ours | published | match | source |", "|---|---|---:|---:|:---:|---|"]
    for figure in FIGURES:
        ours = measure(figure.network, figure.quantity)
        separator = " / " if figure.quantity.startswith("rf:") else " x "
        match = "yes" if matches(ours, figure.published) else "**NO**"
        lines.append(f"| {figure.network} | {_quantity_label(figure.quantity)} | {_show(ours, separator)} | "
                     f"{_show(figure.published, separator)} | {match} | {figure.source} |")
    specs = sorted(p.stem for p in (ROOT / "specs").glob("*.cnn"))
    lines += ["", f"Specs ({len(specs)} files, each checked with `cnndsl check specs/NAME.cnn`): "
              f"{', '.join(f'`{s}`' for s in specs)}.", ""]
    return "\n".join(lines)


DOC = ROOT / "docs" / "fidelity.md"

if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}")
