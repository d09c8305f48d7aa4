"""One case per diagnostic code: the code, its position (line, column) and its message."""

from __future__ import annotations

import pytest

import cnndsl
from cnndsl.diagnostics import Code, SpecError, UsageError
from cnndsl.limits import Limits
from cnndsl.syntax.parse import COMMON_MISTAKES
from tests.conftest import SpecFiles

HEAD = "input x: 3 x 32 x 32\n"

# code -> (spec, line, col, message fragment); each spec triggers that code (errors, warnings, notes)
CASES: dict[str, tuple[str, int, int, str]] = {
    "E002": ("# only a comment\n", 1, 1, "the spec is empty"),
    "E100": (HEAD + "y = x -> conv(16, 3) relu\n", 2, 22, "unexpected `relu`"),
    "E101": (HEAD + "y = x -> conv(16, 3\n", 2, 20, "unexpected end of file"),
    "E102": ("const c = " + "(" * 300 + "1" + ")" * 300 + "\n" + HEAD + "output y = x\n", 1, 209,
             "nests more than 200 levels deep"),
    "E103": ("const c = 9223372036854775808\n" + HEAD + "output y = x\n", 1, 11,
             "the number 9223372036854775808 is out of range"),
    "E104": (HEAD + "output y = x" + " -> relu" * 80_000 + "\n", 2, 599_966, "the spec has more than 150,000 tokens"),
    "E200": (HEAD + "output y = x -> convv(16, 3)\n", 2, 17, "unknown layer `convv`"),
    "E201": (HEAD + "output y = x -> conv(chanels, 3)\n", 2, 22, "unknown name `chanels`"),
    "E202": (HEAD + "input x: 1 x 8\noutput y = x -> relu\n", 2, 7, "`x` is already defined at"),
    "E203": (HEAD + "output y = x -> conv(16, 3, strides=2)\n", 2, 29, "`conv` has no argument `strides`"),
    "E204": (HEAD + "output y = x -> conv(16)\n", 2, 17, "missing required argument(s) `kernel`"),
    "E205": (HEAD + "output y = x -> conv(16, 3, stride=0)\n", 2, 36, "argument `stride` of `conv` must be"),
    "E206": (HEAD + "output y = x -> conv(16, 3, 1)\n", 2, 29, "takes 2 positional argument(s)"),
    "E207": (HEAD + "output y = [x, x] -> relu\n", 2, 22, "`relu` takes 1 input(s); got 2"),
    "E208": ("const c = 7 / 2\n" + HEAD + "output y = x -> conv(c, 3)\n", 1, 11, "7 / 2 is not an integer"),
    "E209": (HEAD + "y = x -> relu\nreturn y\n", 3, 1, "`return` is only meaningful inside a block"),
    "E210": (HEAD + "output y = x -> relu x 1000000000\n", 2, 24, "`relu x 1,000,000,000` repeats past the limit"),
    "E300": ("input x: 1 x 40\noutput y = x -> conv2d(16, 3)\n", 2, 17, "`conv2d` expects a 2-D input"),
    "E301": (HEAD + "a = x -> conv(16, 1)\noutput y = [a, x] -> add\n", 3, 22,
             "`add` needs equal channels; got 16 x 32 x 32 and 3 x 32 x 32"),
    "E302": (HEAD + "a = x -> conv(8, 3)\noutput y = [a, x] -> concat\n", 3, 22,
             "got 8 x 30 x 30 and 3 x 32 x 32"),
    "E303": ("input x: 3 x 7 x 7\noutput y = x -> conv(16, 5, dilation=2) as conv3\n", 2, 17,
             "kernel 5 (dilated 9) exceeds padded input 7 along axis 1 of 3 x 7 x 7 at `conv3`"),
    "E304": ("input x: 3 x 0 x 32\noutput y = x -> relu\n", 1, 14, "non-positive dimension 0"),
    "E305": (HEAD + "output y = x -> conv(16, 3, groups=2)\n", 2, 17, "groups=2 must divide both input channels 3"),
    "E306": (HEAD + "output y = x -> maxpool(2, padding=2)\n", 2, 17, "padding 2 exceeds half the kernel 2"),
    "E400": (HEAD + "a = b -> relu\nb = a -> relu\noutput y = b\n", 2, 5, "`b` is used before it is defined at"),
    "E500": ('import "missing.cnn"\n' + HEAD + "output y = x\n", 1, 1, 'cannot import "'),
    "E502": ("block f(c) {\n  return in -> f(c)\n}\n" + HEAD + "output y = x -> f(3)\n", 2, 16,
             "block `f` calls itself: f -> f"),
    "E503": ("block f(c=1, d) {\n  return in\n}\n" + HEAD + "output y = x -> f(3, 4)\n", 1, 14,
             "has no default but follows one that has"),
    "W100": ("input x: 1 x 7 x 7\noutput y = x -> conv(8, 3, stride=3)\n", 2, 17,
             "stride 3 does not fit axis 1 (input 7, kernel 3, padding 0+0): the last 1 input position(s)"),
    "W101": (HEAD + "unused = x -> relu\noutput y = x -> conv(8, 1)\n", 2, 1, "tensor `unused` is never used"),
    "W102": (HEAD + "output y = x -> conv(8, 3, padding=2)\n", 2, 17, "padding 2 exceeds half the kernel (3 // 2 = 1)"),
    "W103": ("input x: 8 x 32 x 32\na = x -> conv(8, 3, padding=((0, 2), (1, 1)))\nb = x -> conv(8, 3, padding=1)\n"
             "output y = [a, b] -> add\n", 4, 22, "paths merged at `add1` see the input differently (axis 1: centre"),
    "I100": ("input x: 3 x 7 x 7\noutput y = x -> conv(8, 3) -> conv(8, 3) as second -> conv(8, 3) as third\n",
             2, 55, "`third` is the first layer whose receptive field (7 x 7)"),
    "I101": (HEAD + "output y = x -> conv(15, 3)\n", 2, 17, "output 15 channels are not a multiple of 8"),
    "I102": ("input x: 8 x 10 x 10\noutput y = x -> adaptive_avgpool(3)\n", 2, 17, "pools windows of different sizes"),
    "I103": ("const w = 8\nblock f(c) {\n  return in\n}\n", 2, 1, "a block library: 1 block(s), f(c)"),
    "I104": ("input x: 1 x 40\noutput y = x -> conv(8, 3, stride=2)\n", 1, 7, "sizes of L that fit are 39 and 41"),
}


def _diagnostics(specs: SpecFiles, text: str) -> list[cnndsl.Diagnostic]:
    try:
        return specs.load(text).diagnostics
    except SpecError as exc:
        return exc.diagnostics


@pytest.mark.parametrize("code", sorted(CASES))
def test_diagnostic(specs: SpecFiles, code: str) -> None:
    text, line, col, fragment = CASES[code]
    found = [d for d in _diagnostics(specs, text) if d.code == code]
    assert found, f"{code} not reported; got {[d.headline() for d in _diagnostics(specs, text)]}"
    d = found[0]
    assert d.location is not None
    assert (d.location.line, d.location.col) == (line, col), d.headline()
    assert fragment in d.message, d.message


def test_every_code_has_a_case() -> None:
    # file errors, cyclic imports: test_files.py; E600, E601: test_torch_backend.py; E700-E702:
    # test_darknet_import.py, test_import_caffe.py; E703-E705: test_import_torch.py, test_import_onnx.py
    assert set(Code) - set(CASES) == {"E001", "E501", "E600", "E601", "E700", "E701", "E702", "E703", "E704", "E705"}


def test_all_errors_reported_in_one_run(specs: SpecFiles) -> None:
    errors = specs.errors(HEAD + "a = x -> convv(3)\nb = x -> conv(8, 3, strides=1)\nc = x -> conv(8)\n"
                          "output y = [a, b, c] -> add\n")
    assert [e.code for e in errors] == ["E200", "E203", "E204"]  # and no cascade from the failed tensors


def test_errors_inside_blocks_name_the_call(specs: SpecFiles) -> None:
    errors = specs.errors("block f(c) {\n  return in -> conv(c, 9)\n}\ninput x: 3 x 8 x 8\noutput y = x -> f(4) x 3\n")
    assert len(errors) == 1  # reported once, not once per repetition
    assert errors[0].location is not None and errors[0].location.line == 2
    assert "in block `f` called as `f1.0`" in errors[0].notes[0]


def test_unknown_keyword_value_suggests_keywords(specs: SpecFiles) -> None:
    (error,) = specs.errors(HEAD + "output y = x -> conv(8, 3, padding=sme)\n")
    assert error.code == "E201" and error.hint == "did you mean `same`?"


@pytest.mark.parametrize("label", sorted(COMMON_MISTAKES))
def test_common_syntax_mistakes_get_their_hint(specs: SpecFiles, label: str) -> None:
    hint, examples = COMMON_MISTAKES[label]
    for example in examples:
        (error,) = specs.errors(example)
        assert error.code in ("E100", "E101")
        assert error.hint == hint, (example, error.headline())


def test_runaway_expansion_stops_with_an_error(specs: SpecFiles) -> None:
    with pytest.raises(SpecError) as info:
        specs.load(HEAD + "output y = x -> relu x 30 -> relu x 30\n", limits=Limits(layers=50))
    errors = [d for d in info.value.diagnostics if d.is_error]
    assert [e.code for e in errors] == ["E210"] and "more than 50 layers" in errors[0].message


def test_every_broken_statement_reports_one_syntax_error(specs: SpecFiles) -> None:
    errors = specs.errors(HEAD + "a = x -> conv(16, 3) relu\nb = x -> conv(16, kernel: 3)\n"
                          "block f(c) {\n  return in -> conv(c 3)\n}\nc = x => relu\n"
                          "d = x -> conv(8, 3\ne = x -> relu\n")
    assert [(e.location.line, e.location.col) for e in errors if e.location] == [(2, 22), (3, 25), (5, 23), (7, 7),
                                                                                  (9, 1)]
    assert errors[1].message == "unexpected `:`; expected `(`, `)`, `,`, `=`, an operator"  # `(`: size(t, 1)
    assert errors[-1].hint == "the `(` opened at line 8, column 14 is never closed"


def test_syntax_errors_in_an_imported_file_are_located_there(specs: SpecFiles) -> None:
    specs.write("block f(c) {\n  return in -> conv(c, 3\n}\n", "lib.cnn")
    (error,) = specs.errors('import "lib.cnn"\n' + HEAD + "output y = x -> f(4)\n")
    assert error.location is not None and error.location.file.endswith("lib.cnn")
    assert (error.location.line, error.code) == (3, "E100")


def test_a_duplicate_definition_does_not_hide_other_errors(specs: SpecFiles) -> None:
    errors = specs.errors("block f(c) {\n  return in\n}\nblock f(c) {\n  return in\n}\n"
                          + HEAD + "output y = x -> f(3) -> conv(8, 40)\n")
    assert [e.code for e in errors] == ["E202", "E303"]


def test_network_named_twice(specs: SpecFiles) -> None:
    (error,) = specs.errors("network a\nnetwork b\n" + HEAD + "output y = x\n")
    assert error.code == "E202" and error.location is not None and error.location.line == 2


def test_checking_a_block_library_lists_its_blocks(specs: SpecFiles) -> None:
    """A library checks on its own: no error, a note listing its blocks (their bodies are checked where a
    network calls them); the CLI says it has no network and exits 0."""
    from click.testing import CliRunner

    from cnndsl.cli import main

    network = specs.load("const w = 8\nblock f(c) {\n  return in\n}\nblock g(c, k=3) {\n  return in -> f(c)\n}\n",
                         name="lib.cnn")
    (note,) = network.diagnostics
    assert note.code == "I103" and note.message == "a block library: 2 block(s), f(c), g(c, k); no network"
    result = CliRunner().invoke(main, ["check", str(specs.root / "lib.cnn")])
    assert result.exit_code == 0 and result.output.startswith("lib: a block library, no network")


def test_layer_name_collision(specs: SpecFiles) -> None:
    (error,) = specs.errors(HEAD + "a = x -> relu as act\noutput y = a -> relu as act\n")
    assert error.code == "E202" and "layer name `act` is already used at" in error.message


def test_too_many_positional_arguments_is_one_error_per_call(specs: SpecFiles) -> None:
    [error] = specs.errors(HEAD + "output y = x -> conv(16, 3, 1, 1, 1, 1, 1)\n")
    assert error.code == "E206" and error.message == "`conv` takes 2 positional argument(s); got 7"
    assert error.location is not None and error.location.col == 29  # the first one too many


def test_a_non_boolean_condition_is_the_only_error_of_its_block(specs: SpecFiles) -> None:
    errors = specs.errors("block f(c) {\n  if 3 {\n    return in -> relu\n  } else {\n    return in\n  }\n}\n"
                          + HEAD + "output y = x -> f(2)\n")
    assert [e.code for e in errors] == ["E208"]  # not also E503 "ends without return"


def test_an_input_override_cannot_change_the_rank(specs: SpecFiles) -> None:
    path = specs.write("input image: 3 x 32 x 32\noutput y = image -> conv(8, 3)\n")
    wrong_rank = r"override image=3x224 has 2 dimension\(s\), but `image` is declared with 3"
    with pytest.raises(UsageError, match=wrong_rank) as info:
        cnndsl.load(path, inputs={"image": (3, 224)})
    assert info.value.option == "inputs"  # the command line names its flag, --input
    assert cnndsl.load(path, inputs={"image": (3, 64, 48)}).report().outputs["y"] == [8, 62, 46]


def test_a_missing_import_does_not_hide_the_rest_of_the_file(specs: SpecFiles) -> None:
    """The import's error, and the file's own; names that may have come from the import stay quiet."""
    errors = specs.errors('import "missing.cnn"\n' + HEAD + "y = x -> conv(width, 3) -> stage(2)\n"
                          "output z = x -> conv(16, 3, stride=0)\n")
    assert [(e.code, e.location.line if e.location else 0) for e in errors] == [("E500", 1), ("E205", 4)]


def test_a_merge_of_mismatched_sizes_names_the_layer_where_they_diverge(specs: SpecFiles) -> None:
    [error] = specs.errors("block res(c) {\n  y = in -> conv(c, 3) -> relu -> conv(c, 3, padding=1)\n"
                           "  return [y, in] -> add\n}\ninput x: 8 x 16 x 16\noutput z = x -> conv(8, 1) -> res(8)\n")
    assert error.code == "E302" and error.location is not None and error.location.line == 3
    assert error.notes[-1].startswith("the paths diverge at `res1.conv1` (8 x 16 x 16 -> 8 x 14 x 14), ")
    assert error.notes[-1].endswith(":2:13")
