"""Language features: blocks, defaults, repeats, guards, conditionals, constants, imports, layout."""

from __future__ import annotations

import pytest

from tests.conftest import SpecFiles, layer


def names(network) -> list[str]:  # type: ignore[no-untyped-def]
    return [entry.name for entry in network.report().layers]


def test_blocks_defaults_repeats_and_names(specs: SpecFiles) -> None:
    network = specs.load(
        "block cbr(c, k=3) {\n  return in -> conv(c, k, padding=k // 2) -> batchnorm -> relu\n}\n"
        "input x: 3 x 16 x 16\noutput y = x -> cbr(8) x 2 as body -> cbr(16, k=1) -> conv(4, 1) as head\n")
    assert names(network) == [
        "body.0.conv1", "body.0.batchnorm1", "body.0.relu1", "body.1.conv1", "body.1.batchnorm1", "body.1.relu1",
        "cbr1.conv1", "cbr1.batchnorm1", "cbr1.relu1", "head"]
    assert layer(network, "head").shape == [4, 16, 16]


def test_constants_arithmetic_and_conditionals(specs: SpecFiles) -> None:
    network = specs.load(
        "const classes = 20\nconst boxes = 2\nconst wide = true\n"
        "input x: 3 x 8 x 8\n"
        "output y = x -> conv((classes + 5) * boxes if wide else 8, 1) as head -> relu if not wide\n")
    assert layer(network, "head").shape == [50, 8, 8]
    assert names(network) == ["head"]


def test_if_else_and_return_in_blocks(specs: SpecFiles) -> None:
    text = ("block res(c, project=false) {\n  y = in -> conv(c, 3, padding=1)\n"
            "  if project {\n    s = in -> conv(c, 1)\n  } else if c > 100 {\n    s = in -> relu\n  } else {\n"
            "    s = in\n  }\n  return [y, s] -> add\n}\n"
            "input x: 4 x 8 x 8\noutput y = x -> res(8, project=true) -> res(8)\n")
    assert layer(specs.load(text), "res2.add1").shape == [8, 8, 8]


def test_multi_input_blocks_multiple_inputs_and_outputs(specs: SpecFiles) -> None:
    network = specs.load(
        "block fuse(c) {\n  input a, b\n  return [a, b] -> concat -> conv(c, 1)\n}\n"
        "input rgb: 3 x 8 x 8\ninput depth: 1 x 8 x 8\n"
        "f = [rgb, depth] -> fuse(16)\noutput logits = f -> global_avgpool -> flatten -> linear(5)\n"
        "output features = f\n")
    report = network.report()
    assert report.inputs == {"rgb": [3, 8, 8], "depth": [1, 8, 8]}
    assert report.outputs == {"logits": [5], "features": [16, 8, 8]}


def test_layout_comments_continuations_and_shape_literals(specs: SpecFiles) -> None:
    network = specs.load(
        "network demo  # a comment\ninput x: 3x32x32\n\n# a comment line\n"
        "output y = x ->\n    conv(8, (3,\n          3),\n         padding=1)   # trailing\n"
        "    # between lines\n    -> relu\n    -> maxpool(2)\n")
    report = network.report()
    assert report.network == "demo" and report.outputs == {"y": [8, 16, 16]}


def test_repeat_zero_times_is_identity(specs: SpecFiles) -> None:
    assert names(specs.load("input x: 3 x 8 x 8\noutput y = x -> conv(8, 3) x 0 -> relu\n")) == ["relu1"]


def test_imports_are_relative_to_the_importing_file(specs: SpecFiles) -> None:
    specs.write("const width = 12\nblock stem(c) {\n  return in -> conv(c, 3)\n}\n", "lib/common.cnn")
    specs.write('import "common.cnn"\nblock twice(c) {\n  return in -> stem(c) -> stem(c)\n}\n', "lib/blocks.cnn")
    network = specs.load('import "lib/blocks.cnn"\ninput x: 3 x 9 x 9\noutput y = x -> twice(width) as t\n',
                         "nets/../model.cnn")
    assert layer(network, "t.stem2.conv1").shape == [12, 5, 5]


def test_same_padding_with_stride_follows_the_documented_rule(specs: SpecFiles) -> None:
    # out = ceil(n / s); total padding (out-1)*s + k - n split with the larger half after
    network = specs.load("input x: 1 x 10\noutput y = x -> conv(1, 4, stride=3, padding=same) as probe\n")
    rf = layer(network, "probe").rf
    assert layer(network, "probe").shape == [1, 4] and rf is not None and rf.padding == [1]


def test_block_local_constants_and_parameter_defaults_from_file_constants(specs: SpecFiles) -> None:
    network = specs.load("const base = 4\nblock wide(k=3, width=base * 2) {\n  const half = width // 2\n"
                         "  return in -> conv(width, k, padding=k // 2) -> conv(half, 1) as squeeze\n}\n"
                         "input x: 3 x 8 x 8\noutput y = x -> wide() as w\n")
    assert layer(network, "w.squeeze").shape == [4, 8, 8]


def test_constants_inside_a_top_level_if(specs: SpecFiles) -> None:
    text = "const big = true\nif big {\n  const width = 32\n} else {\n  const width = 8\n}\n"
    network = specs.load(text + "input x: 3 x 8 x 8\noutput y = x -> conv(width, 1) as probe\n")
    assert layer(network, "probe").shape == [32, 8, 8]


MOBILENET_V2_BLOCK = """
block inverted(c_out, stride=1, expand=6) {
    const hidden = channels(in) * expand
    y = in -> conv(hidden, 1, bias=false) -> batchnorm -> relu6
        -> conv(hidden, 3, stride=stride, padding=1, groups=depthwise, bias=false) -> batchnorm -> relu6
        -> conv(c_out, 1, bias=false) -> batchnorm
    if stride == 1 and channels(in) == c_out {
        return [in, y] -> add
    }
    return y
}
"""


def test_shape_functions_let_blocks_ask_their_input(specs: SpecFiles) -> None:
    network = specs.load(MOBILENET_V2_BLOCK + "block keep(c=channels(in)) {\n  return in -> conv(c, 1)\n}\n"
                         "input x: 3 x 32 x 32\n"
                         "t = x -> conv(16, 3, padding=1) -> inverted(16) -> inverted(24, stride=2) "
                         "-> inverted(24) -> keep -> conv(size(x, 1) + size(x, -1), 1) as last\n"
                         "output y = t -> reshape(shape(t)) as same\n")
    shapes = {entry.name: entry.shape for entry in network.report().layers}
    assert shapes["inverted1.conv1"] == [96, 32, 32]  # 16 channels x 6
    assert "inverted1.add1" in shapes and "inverted2.add1" not in shapes and "inverted3.add1" in shapes
    assert shapes["inverted3.conv1"] == [144, 16, 16] and shapes["keep1.conv1"] == [24, 16, 16]
    assert shapes["last"] == shapes["same"] == [64, 16, 16]


@pytest.mark.parametrize(("body", "code", "fragment", "col"), [
    ("output y = x -> conv(channels(z), 1)", "E201", "unknown tensor `z`", 31),
    ("output y = x -> conv(chanels(x), 1)", "E201", "unknown function `chanels`", 22),
    ("output y = x -> conv(channels(2), 1)", "E208", "`channels` takes a tensor", 22),
    ("output y = x -> conv(size(x, 3), 1)", "E208", "axis 3 is out of range for a tensor of shape 3 x 8 x 8", 30),
    ("output y = x -> conv(size(x), 1)", "E208", "`size` takes a tensor and an axis", 22),
])
def test_shape_function_errors(specs: SpecFiles, body: str, code: str, fragment: str, col: int) -> None:
    [error] = specs.errors(f"input x: 3 x 8 x 8\n{body}\n")
    assert (error.code, error.location.line if error.location else 0) == (code, 2) and fragment in error.message
    assert error.location is not None and error.location.col == col, error.headline()


def test_a_shape_function_of_a_failed_layer_adds_no_error(specs: SpecFiles) -> None:
    """The layer's own error is the only one: the expression reading its shape fails quietly."""
    errors = specs.errors("input x: 3 x 8 x 8\nb = x -> conv(4, 9)\noutput y = b -> conv(channels(b) * 2, 1)\n")
    assert [(e.code, e.location.line if e.location else 0) for e in errors] == [("E303", 2)]


def test_constants_of_a_file_cannot_read_shapes(specs: SpecFiles) -> None:
    [error] = specs.errors("const c = channels(x)\ninput x: 3 x 8 x 8\noutput y = x -> conv(c, 1)\n")
    assert error.code == "E208" and "no tensor is in scope here" in error.message


def test_repeat_index_numbered_names_and_unnamed_instances(specs: SpecFiles) -> None:
    """What torchvision's names need: `x n for i` (each copy's arguments read its index), `as 0` (layers
    numbered as an nn.Sequential's), `as _` (a block instance whose layers are named where it is called)."""
    network = specs.load(
        "block down(c) {\n  return in -> conv(c, 1) as 0 -> batchnorm as 1\n}\n"
        "block unit(c, stride=1) {\n"
        "  return in -> conv(c, 3, stride=stride, padding=1) as conv1 -> down(c) as downsample\n}\n"
        "block stem() {\n  return in -> conv(4, 3, padding=1) as conv1 -> relu\n}\n"
        "input x: 3 x 16 x 16\n"
        "output y = x -> stem as _ -> unit(4 * (i + 1), (2 if i == 0 else 1)) x 3 for i as layer1\n")
    assert names(network) == [
        "conv1", "relu1", "layer1.0.conv1", "layer1.0.downsample.0", "layer1.0.downsample.1", "layer1.1.conv1",
        "layer1.1.downsample.0", "layer1.1.downsample.1", "layer1.2.conv1", "layer1.2.downsample.0",
        "layer1.2.downsample.1"]
    assert [layer(network, f"layer1.{i}.conv1").shape for i in range(3)] == [[4, 8, 8], [8, 8, 8], [12, 8, 8]]


@pytest.mark.parametrize(("body", "code", "fragment", "col"), [
    ("output y = x -> relu as _", "E209", "`relu` (an op) needs one", 25),
    ("output y = x -> relu x 2 as _", "E209", "`relu` (an op) needs one", 29),
    ("output y = x -> b x 2 as _", "E202", "`conv1` is already used", 30),  # unnamed copies share the caller's names
    ("const i = 1\noutput y = x -> b x 2 for i", "E202", "repeat index `i` hides the constant or parameter `i`", 27),
    ("output y = x -> conv(4 * j, 1) x 2 for i", "E201", "unknown name `j`", 26),
    ("output y = x -> b as _ -> conv(4, 1) as conv1", "E202", "`conv1` is already used", 41),
    ("output y = x -> b x 2 as layer{1}", "E209", "names the copies of a repeat by its index", 17),
    ("output y = x -> b x 2 for i as layer{i - 1}", "E205", "non-negative integer; got -1", 38),
    ("output y = x -> b x 2 for i as layer{i // 2}", "E202", "`layer0` is already used", 17),
])
def test_repeat_index_and_unnamed_instance_errors(specs: SpecFiles, body: str, code: str, fragment: str,
                                                  col: int) -> None:
    errors = specs.errors(f"block b() {{\n  return in -> conv(3, 1) as conv1\n}}\ninput x: 3 x 8 x 8\n{body}\n")
    assert [e.code for e in errors] == [code] and fragment in errors[0].message, errors[0].headline()
    assert errors[0].location is not None and errors[0].location.col == col, errors[0].headline()


def test_numbered_blocks_number_what_they_do_not_name(specs: SpecFiles) -> None:
    """As an nn.Sequential numbers its children: guarded-out layers take no number, unnamed instances and
    repeats continue the numbering, a named repeat is one child."""
    network = specs.load(
        "block cbr(bn) {\n  return in -> conv(4, 3, padding=1) -> batchnorm if bn -> relu\n}\n"
        "numbered block features(bn) {\n"
        "  return in -> cbr(bn) x 2 as _ -> maxpool(2) -> cbr(false) -> relu x 2 as acts -> cbr(bn) x 2\n}\n"
        "input x: 3 x 16 x 16\noutput y = x -> features(true) as features -> features(false) as plain\n")
    assert names(network)[:16] == [
        "features.0", "features.1", "features.2", "features.3", "features.4", "features.5", "features.6",
        "features.7.conv1", "features.7.relu1", "features.acts.0", "features.acts.1",
        "features.8.conv1", "features.8.batchnorm1", "features.8.relu1", "features.9.conv1", "features.9.batchnorm1"]
    assert [name for name in names(network) if name.startswith("plain.")][:5] == [
        "plain.0", "plain.1", "plain.2", "plain.3", "plain.4"]


def test_a_name_template_names_each_copy_by_its_index(specs: SpecFiles) -> None:
    network = specs.load("block d() {\n  return in -> conv(4, 1) as conv1\n}\n"
                         "block db(n) {\n  return in -> d x n for i as denselayer{i + 1}\n}\n"
                         "input x: 3 x 8 x 8\noutput y = x -> db(3) as denseblock1\n")
    assert names(network) == [f"denseblock1.denselayer{i}.conv1" for i in (1, 2, 3)]


# ---- paths: a tensor inside a block instance ------------------------------------------------------
TWO_STAGES = """\
block stage(c) {
    return in -> conv(c, 3, padding=1) as conv1 -> relu -> conv(c, 3, padding=1) as conv2 -> relu
}
block backbone(c) {
    return in -> stage(c) x 2 as layer1 -> stage(c * 2) as layer2
}
input x: 3 x 16 x 16
y = x -> backbone(4) as body
"""


def test_a_path_reads_a_layer_an_instance_or_a_repeat_inside_a_block_instance(specs: SpecFiles) -> None:
    import torch

    network = specs.load(TWO_STAGES + "output out = y -> global_avgpool\n"
                         "output a = body.layer1 -> conv(2, 1) as head_a\n"
                         "output b = body.layer1.0.conv2 -> conv(2, 1) as head_b\n"
                         "output c = [body.layer2, y] -> add\n")
    assert [layer(network, name).shape for name in ("head_a", "head_b", "add1")] == [[2, 16, 16], [2, 16, 16],
                                                                                     [8, 16, 16]]
    module = network.to_torch(seed=1).eval()
    assert [key for key in module.state_dict() if key.startswith("body.")][:2] == ["body.layer1.0.conv1.weight",
                                                                                 "body.layer1.0.conv1.bias"]
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out, a, b, c = module(x)
        layer1 = module.body.layer1(x)
        conv2 = module.body.layer1[0].conv2(module.body.layer1[0].relu1(module.body.layer1[0].conv1(x)))
        torch.testing.assert_close(a, module.head_a(layer1), rtol=0, atol=0)
        torch.testing.assert_close(b, module.head_b(conv2), rtol=0, atol=0)
        torch.testing.assert_close(c, 2 * module.body(x), rtol=0, atol=0)
        torch.testing.assert_close(out, module.body(x).mean((2, 3), keepdim=True), rtol=0, atol=1e-6)


def test_a_path_inside_a_block_reads_its_own_instances(specs: SpecFiles) -> None:
    network = specs.load("""\
block stage(c) {
    return in -> conv(c, 1) as conv1 -> relu
}
block two_heads(c) {
    y = in -> stage(c) as first -> stage(c) as second
    return [first.conv1, y] -> concat
}
input x: 3 x 8 x 8
output y = x -> two_heads(4) as heads
""")
    assert layer(network, "heads.concat1").shape == [8, 8, 8]


@pytest.mark.parametrize(("body", "fragment", "hint"), [
    ("output z = body.layer3 -> relu", "unknown tensor `body.layer3`", "did you mean `body.layer2` or `body.layer1`"),
    ("output z = y.conv1 -> relu", "unknown tensor `y.conv1`", "`y` is a tensor"),
    ("output z = head.conv1 -> relu", "unknown tensor `head.conv1`", "called before it in this body"),
])
def test_a_path_naming_nothing_is_located_with_the_names_there(specs: SpecFiles, body: str, fragment: str,
                                                               hint: str) -> None:
    errors = specs.errors(TWO_STAGES + body + "\n")
    assert [error.code for error in errors] == ["E201"]
    assert fragment in errors[0].message and hint in (errors[0].hint or ""), errors[0].headline()
    assert errors[0].location is not None and (errors[0].location.line, errors[0].location.col) == (9, 12)
