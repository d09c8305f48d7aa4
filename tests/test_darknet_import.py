"""`cnndsl import darknet`: the translated specs reproduce, layer by layer, the BFLOPs Darknet prints
when it loads the same cfg, and a malformed cfg is a located error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import cnndsl
from cnndsl.backends.torch.export import example_inputs
from cnndsl.cli import main
from cnndsl.diagnostics import SpecError
from cnndsl.importers.darknet import translate, translate_cfg
from tests.conftest import ROOT

DATA = ROOT / "tests" / "data" / "darknet"
runner = CliRunner()

# Lines of real Darknet logs (darknet index -> BFLOPs printed for that [convolutional] layer).
# yolov3.cfg at 416 x 416, pjreddie's Darknet: layers 0-14 from the log in pjreddie/darknet issue #1039
# (also ysh329/darknet2caffe issue #8), layers 69-87 from the log in pjreddie/darknet issue #943.
YOLOV3_416 = {0: 0.299, 1: 1.595, 2: 0.177, 3: 1.595, 5: 1.595, 6: 0.177, 7: 1.595, 9: 0.177, 10: 1.595,
              12: 1.595, 13: 0.177, 14: 1.595, 69: 0.177, 70: 1.595, 72: 0.177, 73: 1.595, 75: 0.177,
              76: 1.595, 77: 0.177, 78: 1.595, 79: 0.177, 80: 1.595, 81: 0.088, 84: 0.044, 87: 0.266}
# yolov3-tiny.cfg at 608 x 608, AlexeyAB's Darknet (log in junxnone/aiwiki issue #52): its conv lines.
YOLOV3_TINY_608 = {0: 0.319, 2: 0.852, 4: 0.852, 6: 0.852, 8: 0.852, 10: 0.852, 12: 3.407, 13: 0.189}
# yolov4-tiny.cfg at 416 x 416, AlexeyAB's Darknet: every conv line of the log committed in
# finroc/finroc_projects_scout (its "Total BFLOPS 6.910" adds 0.002 for the three max pools).
YOLOV4_TINY_416 = {0: 0.075, 1: 0.399, 2: 0.797, 4: 0.199, 5: 0.199, 7: 0.089, 10: 0.797, 12: 0.199, 13: 0.199,
                   15: 0.089, 18: 0.797, 20: 0.199, 21: 0.199, 23: 0.089, 26: 0.797, 27: 0.044, 28: 0.399, 29: 0.044,
                   32: 0.011, 35: 1.196, 36: 0.088}
# yolov4.cfg at 608 x 608, AlexeyAB's Darknet: every conv line of the log in qxdn's blog post "毕业设计（二）darknet
# 编译" (2021-03-05); its "Total BFLOPS 128.459" adds 0.067 for shortcuts and the SPP max pools.
YOLOV4_608 = {0: 0.639, 1: 3.407, 2: 0.757, 4: 0.757, 5: 0.379, 6: 3.407, 8: 0.757, 10: 1.514, 11: 3.407,
              12: 0.379, 14: 0.379, 15: 0.189, 16: 1.703, 18: 0.189, 19: 1.703, 21: 0.189, 23: 0.757, 24: 3.407,
              25: 0.379, 27: 0.379, 28: 0.189, 29: 1.703, 31: 0.189, 32: 1.703, 34: 0.189, 35: 1.703, 37: 0.189,
              38: 1.703, 40: 0.189, 41: 1.703, 43: 0.189, 44: 1.703, 46: 0.189, 47: 1.703, 49: 0.189, 50: 1.703,
              52: 0.189, 54: 0.757, 55: 3.407, 56: 0.379, 58: 0.379, 59: 0.189, 60: 1.703, 62: 0.189, 63: 1.703,
              65: 0.189, 66: 1.703, 68: 0.189, 69: 1.703, 71: 0.189, 72: 1.703, 74: 0.189, 75: 1.703, 77: 0.189,
              78: 1.703, 80: 0.189, 81: 1.703, 83: 0.189, 85: 0.757, 86: 3.407, 87: 0.379, 89: 0.379, 90: 0.189,
              91: 1.703, 93: 0.189, 94: 1.703, 96: 0.189, 97: 1.703, 99: 0.189, 100: 1.703, 102: 0.189, 104: 0.757,
              105: 0.379, 106: 3.407, 107: 0.379, 114: 0.757, 115: 3.407, 116: 0.379, 117: 0.095, 120: 0.379,
              122: 0.379, 123: 3.407, 124: 0.379, 125: 3.407, 126: 0.379, 127: 0.095, 130: 0.379, 132: 0.379,
              133: 3.407, 134: 0.379, 135: 3.407, 136: 0.379, 137: 3.407, 138: 0.754, 141: 0.852, 143: 0.379,
              144: 3.407, 145: 0.379, 146: 3.407, 147: 0.379, 148: 3.407, 149: 0.377, 152: 0.852, 154: 0.379,
              155: 3.407, 156: 0.379, 157: 3.407, 158: 0.379, 159: 3.407, 160: 0.189}


def conv_bflops(network: cnndsl.Network, cfg: Path) -> dict[int, float]:
    """BFLOPs per Darknet layer index: our convolutions in order, matched to the cfg's conv sections."""
    sections = [line.strip() for line in cfg.read_text().splitlines() if line.strip().startswith("[")][1:]
    conv_indexes = [i for i, section in enumerate(sections) if section == "[convolutional]"]
    convs = [entry for entry in network.report("darknet").layers if entry.op == "conv2d"]
    assert len(convs) == len(conv_indexes)
    return {index: round(2 * entry.macs / 1e9, 3) for index, entry in zip(conv_indexes, convs, strict=True)}


def imported(tmp_path: Path, cfg: str, size: int) -> tuple[cnndsl.Network, Path]:
    spec = tmp_path / cfg.replace(".cfg", ".cnn")
    spec.write_text(translate_cfg(DATA / cfg))
    return cnndsl.load(spec, inputs={"image": (3, size, size)}), spec


def test_yolov3_reproduces_darknet_s_log(tmp_path: Path) -> None:
    network, _ = imported(tmp_path, "yolov3.cfg", 416)
    per_layer = conv_bflops(network, DATA / "yolov3.cfg")
    assert {index: per_layer[index] for index in YOLOV3_416} == YOLOV3_416
    assert round(2 * network.report("darknet").totals.macs / 1e9, 2) == 65.86  # pjreddie.com: 65.86 Bn
    shapes = {entry.name: entry.shape for entry in network.report().layers}
    assert shapes["layer85"] == [256, 26, 26] and shapes["layer86"] == [768, 26, 26]  # upsample, route 85 61
    assert network.report().outputs == {"yolo1": [255, 13, 13], "yolo2": [255, 26, 26], "yolo3": [255, 52, 52]}


def test_yolov3_tiny_reproduces_darknet_s_log(tmp_path: Path) -> None:
    network, _ = imported(tmp_path, "yolov3-tiny.cfg", 608)
    per_layer = conv_bflops(network, DATA / "yolov3-tiny.cfg")
    assert {index: per_layer[index] for index in YOLOV3_TINY_608} == YOLOV3_TINY_608
    assert {entry.name: entry.shape for entry in network.report().layers}["layer11"] == [512, 19, 19]
    at_416, _ = imported(tmp_path, "yolov3-tiny.cfg", 416)
    assert round(2 * at_416.report("darknet").totals.macs / 1e9, 2) == 5.56  # pjreddie.com: 5.56 Bn


def test_darknet_53_repeats_become_blocks(tmp_path: Path) -> None:
    text = translate_cfg(DATA / "yolov3.cfg")
    for run in ("residual(64) as layers2_4", "residual(128) x 2", "residual(256) x 8", "residual(512) x 8",
                "residual(1024) x 4"):
        assert run in text
    assert text.count("conv_bn_leaky(") > 20 and "block residual(c)" in text


def test_imported_spec_compiles_to_pytorch(tmp_path: Path) -> None:
    network, _ = imported(tmp_path, "yolov3-tiny.cfg", 416)
    module = network.to_torch()
    with torch.no_grad():
        outputs = module(*example_inputs(network.graph, batch=1))
    assert [tuple(o.shape) for o in outputs] == [(1, 255, 13, 13), (1, 255, 26, 26)]
    assert sum(p.numel() for p in module.parameters()) == network.report().totals.params


def test_cli_writes_a_spec_that_checks(tmp_path: Path) -> None:
    out = tmp_path / "tiny.cnn"
    result = runner.invoke(main, ["import", "darknet", str(DATA / "yolov3-tiny.cfg"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "5.565 BFLOPs" in result.stdout and "24 Darknet layers" in result.stdout and out.exists()
    assert runner.invoke(main, ["check", str(out), "--convention", "darknet"]).exit_code == 0


@pytest.mark.parametrize(("cfg", "code", "line", "message"), [
    ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=8\nsize=3\nstrid=2\n", "E701", 7, "no key `strid`"),
    ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=eight\nsize=3\n", "E701", 5, "must be an integer"),
    ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=8\nactivation=selu\n", "E701", 6, "`selu`"),
    ("[net]\nwidth=32\nheight=32\n[dropout]\nprobability=1.5\n", "E701", 5, "must be a number in [0, 1)"),
    ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=8\n[route]\nlayers=-3\n", "E702", 7, "not an earlier"),
    ("[net]\nwidth=32\nheight=32\n[deformable]\nfilters=8\n", "E700", 4, "unknown or unsupported section"),
    ("[convolutional]\nfilters=8\n", "E700", 1, "starts with a [net] section"),
    ("[net]\nwidth=32\n[convolutional]\nfilters=8\n", "E701", 1, "needs `height`"),
])
def test_malformed_cfg_is_a_located_error(cfg: str, code: str, line: int, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.cfg"
    path.write_text(cfg)
    with pytest.raises(SpecError) as info:
        translate_cfg(path)
    first = info.value.diagnostics[0]
    assert (first.code, first.location.line if first.location else None) == (code, line)
    assert message in first.message
    result = runner.invoke(main, ["import", "darknet", str(path), "-o", str(tmp_path / "bad.cnn")])
    assert result.exit_code == 1 and f"bad.cfg:{line}:" in result.stderr


def test_modern_activations_and_a_leading_dot_translate(tmp_path: Path) -> None:
    """YOLOv4's mish, relu6, elu, swish; `probability=.5` (Darknet's cfgs write it so) becomes `0.5`."""
    path = tmp_path / "modern.cfg"
    path.write_text("[net]\nwidth=16\nheight=16\nchannels=3\n"
                    + "".join(f"[convolutional]\nfilters=8\nsize=3\npad=1\nactivation={act}\n"
                              for act in ("mish", "relu6", "elu", "swish", "hard_swish"))
                    + "[dropout]\nprobability=.5\n")
    text = translate_cfg(path)
    assert all(op in text for op in ("mish", "relu6", "elu", "silu", "hardswish", "dropout(0.5)"))
    spec = tmp_path / "modern.cnn"
    spec.write_text(text)
    assert cnndsl.load(spec).report().totals.params == 3 * 9 * 8 + 8 + 4 * (8 * 9 * 8 + 8)


def test_a_grouped_route_is_a_channel_slice(tmp_path: Path) -> None:
    """YOLOv4-tiny's CSP route `layers=-1 groups=2 group_id=1`: the second half of the channels, a slice
    that asks its source for its channel count; the concat after it reads it by name."""
    conv = "[convolutional]\nbatch_normalize=1\nfilters={}\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    path = tmp_path / "csp.cfg"
    path.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n" + conv.format(64)
                    + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n" + conv.format(32) + "[route]\nlayers = -1,-2\n")
    spec = tmp_path / "csp.cnn"
    spec.write_text(translate_cfg(path))
    shapes = {layer.name: layer.shape for layer in cnndsl.load(spec).report().layers}
    assert shapes["layer1"] == [32, 32, 32] and shapes["layer3"] == [64, 32, 32]
    bad = tmp_path / "bad.cfg"
    bad.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n" + conv.format(64) + "[route]\nlayers=-1\ngroups=2\n"
                   "group_id=2\n")
    with pytest.raises(SpecError, match="group_id below 2"):
        translate_cfg(bad)


def test_yolov2_reorg_and_region_head(tmp_path: Path) -> None:
    """YOLOv2's [reorg] (space to depth: 16 x 64 x 64 -> 64 x 32 x 32) and its [region] head, an output."""
    path = tmp_path / "v2.cfg"
    path.write_text("[net]\nwidth=64\nheight=64\nchannels=3\n[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\n"
                    "stride=1\npad=1\nactivation=leaky\n[reorg]\nstride=2\n[convolutional]\nfilters=125\nsize=1\n"
                    "stride=1\npad=1\nactivation=linear\n[region]\nanchors=1.08,1.19\nclasses=20\nnum=5\n")
    spec = tmp_path / "v2.cnn"
    spec.write_text(translate_cfg(path))
    report = cnndsl.load(spec).report()
    assert {layer.name: layer.shape for layer in report.layers}["layer1"] == [64, 32, 32]
    assert report.outputs == {"yolo1": [125, 32, 32]}


def test_layer_names_land_on_the_layer_darknet_counts(tmp_path: Path) -> None:
    """`as layerN` names the convolution (or the connected layer's linear), not its batch norm or activation,
    so the report's rows line up with Darknet's log."""
    path = tmp_path / "plain.cfg"
    path.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=8\nsize=3\npad=1\n"
                    "activation=leaky\n[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=2\npad=1\n"
                    "activation=mish\n[connected]\noutput=10\nactivation=relu\n")
    spec = tmp_path / "plain.cnn"
    spec.write_text(translate_cfg(path))
    ops = {layer.name: layer.op for layer in cnndsl.load(spec).report().layers}
    assert (ops["layer0"], ops["layer1"], ops["layer2"]) == ("conv2d", "conv2d", "linear")


def test_yolov4_tiny_reproduces_darknet_s_log(tmp_path: Path) -> None:
    """CSP routes (`groups=2 group_id=1`) as channel slices, every conv line of Darknet's log, its layer count."""
    network, _ = imported(tmp_path, "yolov4-tiny.cfg", 416)
    assert conv_bflops(network, DATA / "yolov4-tiny.cfg") == YOLOV4_TINY_416
    assert round(2 * network.report("darknet").totals.macs / 1e9, 3) == 6.908  # 6.910 - 0.002 (max pools)
    shapes = {entry.name: entry.shape for entry in network.report().layers}
    assert (shapes["layer3"], shapes["layer8"], shapes["layer24"]) == ([32, 104, 104], [128, 104, 104], [512, 26, 26])
    assert network.report().outputs == {"yolo1": [255, 13, 13], "yolo2": [255, 26, 26]}
    assert translate(DATA / "yolov4-tiny.cfg").layers == 38  # "Done! Loaded 38 layers from weights-file"


def test_yolov4_reproduces_darknet_s_log(tmp_path: Path) -> None:
    """Mish, CSP blocks with shortcuts, SPP (max pools of 5, 9, 13 at stride 1), PANet routes: all 110
    convolutions of Darknet's log, 162 layers, three heads."""
    network, _ = imported(tmp_path, "yolov4.cfg", 608)
    assert conv_bflops(network, DATA / "yolov4.cfg") == YOLOV4_608
    assert round(2 * network.report("darknet").totals.macs / 1e9, 3) == 128.389  # 128.459 - 0.067, rounded
    assert network.report().outputs == {"yolo1": [255, 76, 76], "yolo2": [255, 38, 38], "yolo3": [255, 19, 19]}
    assert translate(DATA / "yolov4.cfg").layers == 162  # "Done! Loaded 162 layers from weights-file"


@pytest.mark.parametrize(("cfg", "layers", "bflops"), [("darknet53.cfg", 78, 18.57), ("resnet50.cfg", 69, 9.74)])
def test_imagenet_classifiers_reproduce_pjreddie_s_table(tmp_path: Path, cfg: str, layers: int, bflops: float) -> None:
    """pjreddie.com/darknet/imagenet lists Darknet53 at 18.57 Bn and ResNet 50 at 9.74 Bn operations (256 x 256).
    Darknet's resnet50.cfg has no projection shortcuts: its [shortcut] adds the channels and positions the two
    tensors share (`darknet_shortcut`)."""
    network, _ = imported(tmp_path, cfg, 256)
    assert round(2 * network.report("darknet").totals.macs / 1e9, 2) == bflops
    assert translate(DATA / cfg).layers == layers and network.report().outputs["out1"] == [1000, 1, 1]


def _darknet_shortcut(out: np.ndarray, add: np.ndarray) -> np.ndarray:
    """Darknet's shortcut_cpu (src/blas.c) for one sample: out[k, j*sample, i*sample] += add[k, j*stride, i*stride]
    for k below both channel counts."""
    result = out.copy()
    stride, sample = max(add.shape[1] // out.shape[1], 1), max(out.shape[1] // add.shape[1], 1)
    size, channels = min(out.shape[1], add.shape[1]), min(out.shape[0], add.shape[0])
    for k in range(channels):
        for j in range(size):
            for i in range(size):
                result[k, j * sample, i * sample] += add[k, j * stride, i * stride]
    return result


@pytest.mark.parametrize(("out", "add"), [((8, 4, 4), (4, 8, 8)), ((4, 4, 4), (8, 4, 4)), ((4, 4, 4), (4, 4, 4))])
def test_the_shortcut_block_computes_darknet_s_shortcut(tmp_path: Path, out: tuple[int, ...],
                                                        add: tuple[int, ...]) -> None:
    from cnndsl.importers.darknet import SHORTCUT_BLOCK

    spec = tmp_path / "shortcut.cnn"
    spec.write_text(SHORTCUT_BLOCK + f"input a: {' x '.join(map(str, out))}\ninput b: {' x '.join(map(str, add))}\n"
                    "output y = [a, b] -> darknet_shortcut\n")
    x, y = np.random.default_rng(0).standard_normal((2, 1, 8, 8, 8)).astype(np.float32)
    a, b = x[:, : out[0], : out[1], : out[2]], y[:, : add[0], : add[1], : add[2]]
    with torch.no_grad():
        got = cnndsl.load(spec).to_torch()(torch.from_numpy(a.copy()), torch.from_numpy(b.copy())).numpy()
    np.testing.assert_allclose(got[0], _darknet_shortcut(a[0], b[0]), rtol=0, atol=1e-6)


def test_a_translation_that_does_not_check_is_located_in_the_cfg_and_not_written(tmp_path: Path) -> None:
    """A route joining tensors of different sizes translates, then fails to check: the error points at the
    cfg's [route] section, and no .cnn is left behind."""
    path = tmp_path / "sizes.cfg"
    conv = "[convolutional]\nfilters=8\nsize=3\nstride={}\npad=1\nactivation=leaky\n"
    path.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n" + conv.format(1) + conv.format(2)
                    + "[route]\nlayers=-1,-2\n")
    out = tmp_path / "sizes.cnn"
    result = runner.invoke(main, ["import", "darknet", str(path), "-o", str(out)])
    assert result.exit_code == 1 and not out.exists() and not list(tmp_path.glob(".sizes*"))
    assert f"{path}:17:1: error[E302]" in result.stderr and "(in Darknet layer 2 as translated)" in result.stderr


def test_a_route_repeating_one_layer(tmp_path: Path) -> None:
    """`layers=0,0,0` concatenates layer 0 three times (it once wrote a spec using an undefined tensor)."""
    path = tmp_path / "repeat.cfg"
    path.write_text("[net]\nwidth=16\nheight=16\nchannels=3\n[convolutional]\nfilters=8\nsize=3\npad=1\n"
                    "activation=leaky\n[route]\nlayers=0,0,0\n[convolutional]\nfilters=4\nsize=1\nactivation=linear\n")
    spec = tmp_path / "repeat.cnn"
    spec.write_text(translate_cfg(path))
    shapes = {layer.name: layer.shape for layer in cnndsl.load(spec).report().layers}
    assert shapes["layer1"] == [24, 16, 16] and shapes["layer2"] == [4, 16, 16]
