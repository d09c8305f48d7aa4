"""`cnndsl import caffe`: the BVLC deploy prototxts (tests/data/caffe, written from the published files)
import with their published parameter counts and output sizes, Caffe's ceil-mode pooling kept; the V1
syntax, BatchNorm + Scale, in-place layers and training-only parts; bad files are located errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import cnndsl
from cnndsl.api import import_caffe
from cnndsl.cli import main
from cnndsl.diagnostics import SpecError
from cnndsl.syntax.fmt import format_text
from tests.conftest import ROOT

CAFFE = ROOT / "tests" / "data" / "caffe"

# parameters as published with the BVLC models (LeNet: Caffe's MNIST example), the output per sample
PUBLISHED = [("lenet", 431_080, [10]), ("bvlc_alexnet", 60_965_224, [1000]),
             ("bvlc_reference_caffenet", 60_965_224, [1000]), ("bvlc_googlenet", 6_998_552, [1000])]


@pytest.mark.parametrize(("name", "params", "output"), PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_bvlc_models_import_with_their_published_counts(name: str, params: int, output: list[int]) -> None:
    imported = import_caffe(CAFFE / f"{name}.prototxt")
    report = imported.network.report()
    assert report.totals.params == params
    assert list(report.outputs.values()) == [output]
    assert format_text(imported.text, f"{name}.cnn") == imported.text
    module = imported.network.to_torch()
    assert sum(p.numel() for p in module.parameters()) == params


def test_caffe_rounds_pooling_up_where_pytorch_rounds_down() -> None:
    """GoogLeNet's first pooling: 112 -> 56 in Caffe (and the paper), 55 with PyTorch's default."""
    network = import_caffe(CAFFE / "bvlc_googlenet.prototxt").network
    shapes = {layer.name: layer.shape for layer in network.report().layers}
    assert shapes["pool1._3x3_s2"] == [64, 56, 56] and shapes["pool2._3x3_s2"] == [192, 28, 28]
    assert shapes["pool3._3x3_s2"][1:] == [14, 14] and shapes["pool4._3x3_s2"][1:] == [7, 7]
    floor = torch.nn.MaxPool2d(3, 2)(torch.zeros(1, 64, 112, 112)).shape[-1]
    assert floor == 55
    with torch.no_grad():  # the compiled module pools as the report says
        out = network.to_torch(outputs=["pool1"])(torch.zeros(1, 3, 224, 224))["pool1"]
    assert list(out.shape[1:]) == [64, 56, 56]


def test_googlenet_reads_as_one_inception_block() -> None:
    text = import_caffe(CAFFE / "bvlc_googlenet.prototxt").text
    assert text.count("block inception(") == 1 and text.count("-> inception(") == 9


V1_AND_TRAINING = """
name: "small"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 32
input_dim: 32
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
         convolution_param { num_output: 8 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" batch_norm_param { use_global_stats: true } }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 8 kernel_h: 1 kernel_w: 3 pad_h: 0 pad_w: 1 } }
layer { name: "sum" type: "Eltwise" bottom: "conv1" bottom: "conv2" top: "sum" }
layer { name: "gate" type: "Eltwise" bottom: "sum" bottom: "conv2" top: "gate" eltwise_param { operation: PROD } }
layer { name: "pool" type: "Pooling" bottom: "gate" top: "pool" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param { num_output: 4 } }
layer { name: "drop" type: "Dropout" bottom: "fc" top: "fc" include { phase: TRAIN } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


def test_v1_layers_batchnorm_with_scale_eltwise_and_training_parts(tmp_path: Path) -> None:
    path = tmp_path / "small.prototxt"
    path.write_text(V1_AND_TRAINING)
    imported = import_caffe(path)
    layers = imported.network.report().layers
    assert [layer.op for layer in layers] == ["conv2d", "batchnorm2d", "relu", "conv2d", "add", "mul",
                                              "global_avgpool", "flatten", "linear"]
    # conv1 8*3*9, batch norm with Scale's affine 2*8, conv2 8*8*3 + 8, fc 8*4 + 4
    assert imported.network.report().totals.params == 216 + 16 + 200 + 36
    assert any("drop" in note for note in imported.notes) and any("loss" in note for note in imported.notes)


@pytest.mark.parametrize(("text", "code", "line", "message"), [
    ('input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\nlayer { name: "c" type: "Convolution"\n'
     '  bottom: "data" top: "c" convolution_param { kernel_size: 3 }\n}', "E701", 7, "needs num_output"),
    ('input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\nlayer { name: "r" type: "ReLU"\n'
     '  bottom: "nothing" top: "r" }', "E702", 7, "reads blob nothing"),
    ('input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\nlayer { name: "s" type: "SPP"\n'
     '  bottom: "data" top: "s" }', "E703", 6, "SPP layer cannot be written"),
    ('layer { name: "c" type: "Convolution" \n  convolution_param { num_output: 3 }\n', "E700", 2, "ends before"),
    ('layer { name: "r" type: "ReLU" bottom: "x" top: "x" }\n', "E701", 1, "declares no input"),
], ids=["no-num-output", "missing-bottom", "unknown-layer", "truncated", "no-input"])
def test_bad_prototxts_are_located_errors(tmp_path: Path, text: str, code: str, line: int, message: str) -> None:
    path = tmp_path / "bad.prototxt"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        import_caffe(path)
    error = info.value.diagnostics[0]
    assert error.code == code and message in error.message
    assert error.location is not None and (error.location.file, error.location.line) == (str(path), line)


def test_the_command(tmp_path: Path) -> None:
    out = tmp_path / "alexnet.cnn"
    result = CliRunner().invoke(main, ["import", "caffe", str(CAFFE / "bvlc_alexnet.prototxt"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "60,965,224 parameters" in result.output
    assert cnndsl.load(out).report().totals.params == 60_965_224
    bad = tmp_path / "bad.prototxt"
    bad.write_text("layer {")
    result = CliRunner().invoke(main, ["import", "caffe", str(bad), "-o", str(tmp_path / "bad.cnn")])
    assert result.exit_code == 1 and "error[E700]" in result.output and "Traceback" not in result.output
