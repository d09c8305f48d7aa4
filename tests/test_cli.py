"""The `cnndsl` command as a user runs it: exit codes, formats, overrides, and files that are no spec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from cnndsl.cli import main
from cnndsl.report.model import Report
from tests.conftest import ROOT, SPECS

runner = CliRunner()


SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())


def run(*args: str) -> tuple[int, str, str]:
    """The CLI in-process; every `check --json` report it prints is checked against the published schema."""
    result = runner.invoke(main, list(args))
    if args[0] == "check" and "--json" in args and result.stdout.strip():
        data = json.loads(result.stdout)
        for report in data if isinstance(data, list) else [data]:
            jsonschema.validate(report, SCHEMA)
    return result.exit_code, result.stdout, result.stderr


def test_check_prints_table_totals_and_diagnostics() -> None:
    code, out, _ = run("check", str(SPECS / "mnist1d.cnn"))
    assert code == 0
    assert "conv1d" in out and "Params: 2,050" in out and "MACs (torchvision, batch 1): 10,230" in out
    assert "warning[W100]" in out


def test_json_report_matches_schema_and_batch_scaling() -> None:
    code, out, _ = run("check", str(SPECS / "mnist1d.cnn"), "--json", "--convention", "torchinfo", "--batch", "100")
    assert code == 0
    report = Report.model_validate_json(out)
    assert report.totals.macs == 1_072_000
    data = json.loads(out)
    assert set(data) == {"network", "convention", "batch", "inputs", "outputs", "training_outputs", "layers", "taps",
                         "by_op", "training", "totals", "diagnostics"}
    assert set(data["layers"][0]) == {"name", "op", "inputs", "shape", "params", "macs", "rf", "line",
                                      "training_only", "layers", "window"}
    assert data["layers"][-1]["rf"] is None and data["inputs"] == {"x": [1, 40]}


def test_fractional_strides_are_exact_in_json(tmp_path: Path) -> None:
    spec = tmp_path / "up.cnn"
    spec.write_text("input x: 3 x 8 x 8\noutput y = x -> upsample(2) -> conv(4, 3)\n")
    code, out, _ = run("check", str(spec), "--json")
    rf = json.loads(out)["layers"][-1]["rf"]
    assert code == 0 and rf == {"size": [2, 2], "stride": ["1/2", "1/2"], "padding": ["1/4", "1/4"]}


def test_markdown_format() -> None:
    code, out, _ = run("check", str(SPECS / "lenet5.cnn"), "--format", "markdown")
    assert code == 0 and out.startswith("### lenet5") and "| c1 | conv2d | 6 x 28 x 28 | 156 |" in out


def test_input_override_changes_shapes_not_params() -> None:
    code, out, _ = run("check", str(SPECS / "resnet18.cnn"), "--json", "--input", "image=3x512x512")
    report = Report.model_validate_json(out)
    assert code == 0 and report.inputs == {"image": [3, 512, 512]} and report.totals.params == 11_689_512
    assert report.layers[0].shape == [64, 256, 256]


SETTABLE = """\
const width = 8
const bn = true
const drop = 0.5
const pad = (1, 1)
input x: 3 x 16 x 16
output y = x -> conv(width, 3, padding=pad) -> batchnorm if bn -> relu -> dropout(drop)
"""


@pytest.mark.parametrize(("args", "params"), [
    ([], 8 * 27 + 8 + 16),
    (["--set", "width=4"], 4 * 27 + 4 + 8),
    (["--set", "bn=false", "--set", "width=2"], 2 * 27 + 2),
    (["--set", "drop=0"], 8 * 27 + 8 + 16),  # an integer for a decimal
])
def test_set_replaces_the_spec_s_top_level_constants(tmp_path: Path, args: list[str], params: int) -> None:
    spec = tmp_path / "settable.cnn"
    spec.write_text(SETTABLE)
    code, out, err = run("check", str(spec), "--json", *args)
    assert code == 0, err
    assert Report.model_validate_json(out).totals.params == params


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "depth=3"], "--set: depth: not a constant declared at the top of"),
    (["--set", "bn=1"], "--set: `bn` is true or false at"),
    (["--set", "width=2.5"], "--set: `width` is an integer at"),
    (["--set", "pad=2"], "only numbers and true/false can be set"),
    (["--set", "width"], "expected NAME=VALUE with a number or true/false"),
    (["--set", "width=eight"], "expected NAME=VALUE with a number or true/false"),
])
def test_set_mistakes_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    spec = tmp_path / "settable.cnn"
    spec.write_text(SETTABLE)
    code, _, err = run("check", str(spec), *args)
    assert code == 2 and message in err, err


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "nope=3x8x8"], "--input: an input override names no declared input: nope"),
    (["--input", "image=3x"], "expected NAME=CxHxW"),
    (["--batch", "0"], "0 is not in the range"),
    (["--convention", "flops"], "'flops' is not one of"),
])
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    code, out, err = run("check", str(SPECS / "resnet18.cnn"), *args)
    assert code == 2 and message in err


def test_spec_errors_exit_1_with_located_messages(tmp_path: Path) -> None:
    spec = tmp_path / "bad.cnn"
    spec.write_text("input x: 3 x 8 x 8\noutput y = x -> conv(8, 9)\n")
    code, out, err = run("check", str(spec))
    assert code == 1 and out == ""
    assert f"{spec}:2:17: error[E303]: kernel 9 exceeds padded input 8" in err
    assert " 2 | output y = x -> conv(8, 9)\n   |                 ^^^^^^^^^^" in err
    code, out, _ = run("check", str(spec), "--json")
    assert code == 1 and json.loads(out)["diagnostics"][0]["code"] == "E303"


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p / "missing.cnn", "no such file"),
    (lambda p: p, "is a directory"),
    (lambda p: (p / "bin.cnn").write_bytes(b"\x7fELF\x00\x01") and p / "bin.cnn", "is a binary file"),
    (lambda p: (p / "latin.cnn").write_bytes(b"input x: 3 x 8\n# caf\xe9\n") and p / "latin.cnn", "is not UTF-8"),
])
def test_unreadable_files_exit_2(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("check", str(make(tmp_path)))
    assert code == 2 and "error[E001]" in err and message in err and "Traceback" not in err


def test_empty_file_is_a_spec_error(tmp_path: Path) -> None:
    spec = tmp_path / "empty.cnn"
    spec.write_text("")
    code, _, err = run("check", str(spec))
    assert code == 1 and "error[E002]: the spec is empty" in err


def test_cyclic_import(tmp_path: Path) -> None:
    (tmp_path / "a.cnn").write_text('import "b.cnn"\ninput x: 1 x 4\noutput y = x\n')
    (tmp_path / "b.cnn").write_text('import "a.cnn"\n')
    code, _, err = run("check", str(tmp_path / "a.cnn"))
    assert code == 1 and "error[E501]: cyclic import: a.cnn -> b.cnn -> a.cnn" in err


def test_schema_command_and_explain() -> None:
    code, out, _ = run("schema")
    assert code == 0 and json.loads(out)["title"] == "Report"
    code, out, _ = run("explain", "w100")
    assert code == 0 and "W100 (warning, lints)" in out and "\nfix: pad the input" in out
    from cnndsl.diagnostics import Code

    assert all(code.fix and code.meaning and code.example for code in Code)  # every code says what fixes it
    assert all(code.name == code.value for code in Code)
    assert run("explain", "X999")[0] == 2
    code, out, _ = run("explain")  # every code, one line each
    assert code == 0 and out.startswith("E001  error") and "W100  warning" in out
    result = runner.invoke(main, ["explain", "W10"])
    assert result.exit_code == 2 and "did you mean `W10" in result.output


def test_check_never_imports_torch_or_tvm() -> None:
    probe = ("import sys; from cnndsl.cli import main\n"
             "try:\n    main(['check', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
             "assert 'torch' not in sys.modules and 'tvm' not in sys.modules, 'heavy import'\n")
    result = subprocess.run([sys.executable, "-c", probe, str(SPECS / "resnet18.cnn")], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_console_script_runs() -> None:
    script = Path(sys.executable).parent / "cnndsl"
    result = subprocess.run([str(script), "check", str(SPECS / "unet.cnn")], capture_output=True, text=True)
    assert result.returncode == 0 and "mask: 2 x 388 x 388" in result.stdout


@pytest.mark.parametrize(("text", "args", "code", "stream_text"), [
    ("input x: 3 x 8 x 8\noutput y = x -> conv(8, 9)\n", [], 1, "error[E303]"),
    ("input x: 3 x 8 x 8\noutput y = x -> relu\n", ["--batch", "0"], 2, "Invalid value for '--batch'"),
    ("input x: 3 x 8 x 8\noutput y = x -> relu\n", ["--input", "z=1x2"], 2, "names no declared input"),
])
def test_console_script_exit_codes(tmp_path: Path, text: str, args: list[str], code: int, stream_text: str) -> None:
    spec = tmp_path / "m.cnn"
    spec.write_text(text)
    script = Path(sys.executable).parent / "cnndsl"
    result = subprocess.run([str(script), "check", str(spec), *args], capture_output=True, text=True)
    assert result.returncode == code and stream_text in result.stderr and "Traceback" not in result.stderr


def test_color_only_when_asked(tmp_path: Path) -> None:
    spec = tmp_path / "m.cnn"
    spec.write_text("input x: 3 x 7 x 7\noutput y = x -> conv(8, 3, stride=3)\n")
    assert "\x1b[" in run("check", str(spec), "--color")[1]
    assert "\x1b[" not in run("check", str(spec))[1]


@pytest.mark.parametrize("spec", ["mnist1d", "unet", "resnet18"])
def test_json_output_validates_against_the_committed_schema(spec: str) -> None:
    import jsonschema

    schema = json.loads((ROOT / "docs" / "report.schema.json").read_text())
    code, out, _ = run("check", str(SPECS / f"{spec}.cnn"), "--json")
    assert code == 0
    jsonschema.validate(json.loads(out), schema)


def test_check_leaves_the_garbage_collector_as_it_found_it() -> None:
    """`check` pauses the cyclic collector for speed; run in-process it must switch it back on, or every
    reference cycle created afterwards (fx modules, TVM objects) would leak."""
    import gc

    assert gc.isenabled()
    assert run("check", str(SPECS / "mnist1d.cnn"))[0] == 0
    assert gc.isenabled()


def test_depth_collapses_block_instances_and_keeps_the_totals() -> None:
    """`--depth 1` on ResNet-18: one row per stage (the repeat of basic blocks), the same totals."""
    code, out, _ = run("check", str(SPECS / "resnet18.cnn"), "--json", "--depth", "1")
    assert code == 0
    report = json.loads(out)
    rows = {layer["name"]: layer for layer in report["layers"]}
    assert [name for name in rows if name.startswith("layer")] == ["layer1", "layer2", "layer3", "layer4"]
    assert rows["layer2"]["op"] == "basic x 2" and rows["layer2"]["shape"] == [128, 28, 28]
    assert rows["layer2"]["rf"]["size"] == [99, 99] and rows["layer2"]["layers"] == 16
    assert sum(layer["params"] for layer in report["layers"]) == report["totals"]["params"] == 11_689_512
    assert sum(layer["macs"] for layer in report["layers"]) == report["totals"]["macs"]
    code, deeper, _ = run("check", str(SPECS / "resnet18.cnn"), "--depth", "2")
    assert code == 0 and "layer2.0   basic" in deeper and "layer2.0.conv1" not in deeper
    assert run("check", str(SPECS / "resnet18.cnn"), "--depth", "0")[0] == 2


def test_by_op_quiet_and_the_json_a_machine_needs() -> None:
    code, out, _ = run("check", str(SPECS / "resnet18.cnn"), "--by-op", "--quiet")
    assert code == 0 and "By op:" in out and "info[" not in out
    assert "  conv2d               20   11,166,912   1,813,561,344          100.0%" in out
    code, out, _ = run("check", str(SPECS / "resnet18.cnn"), "--json", "--convention", "darknet", "--batch", "2")
    report = json.loads(out)
    assert (report["convention"], report["batch"]) == ("darknet", 2)
    assert report["totals"]["bflops"] == round(2 * report["totals"]["macs"] / 1e9, 6)
    assert report["totals"]["peak_activation_bytes"] == 2 * 6_422_528
    assert report["by_op"][0]["op"] == "conv2d" and sum(op["params"] for op in report["by_op"]) == 11_689_512
    info = report["diagnostics"][0]
    assert info["end_col"] > info["col"] and info["notes"] and "hint" in info


def test_a_spec_from_standard_input(tmp_path: Path) -> None:
    result = runner.invoke(main, ["check", "-"], input="input x: 3 x 8 x 8\noutput y = x -> conv(4, 30)\n")
    assert result.exit_code == 1 and "<stdin>:2:17: error[E303]" in result.output
    result = runner.invoke(main, ["check", "-", "--json"], input=(SPECS / "lenet5.cnn").read_text())
    assert result.exit_code == 0 and json.loads(result.output)["network"] == "lenet5"
    result = runner.invoke(main, ["check", "-"], input=b"\xff\xfe not text")
    assert result.exit_code == 2 and "is not UTF-8 text" in result.output


def test_json_of_a_file_that_cannot_be_read_is_json(tmp_path: Path) -> None:
    result = runner.invoke(main, ["check", str(tmp_path / "missing.cnn"), "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert [(d["code"], d["severity"]) for d in report["diagnostics"]] == [("E001", "error")]
    assert "no such file" in report["diagnostics"][0]["message"]


def test_diff_lists_the_added_blocks_and_nothing_for_the_same_spec() -> None:
    code, out, _ = run("diff", str(SPECS / "resnet18.cnn"), str(SPECS / "resnet34.cnn"), "--json")
    assert code == 0
    result = json.loads(out)
    assert [(e["name"], e["op"], e["layers"]) for e in result["added"]] == [
        (name, "basic", 7) for name in ("layer1.2", "layer2.2", "layer2.3", "layer3.2", "layer3.3", "layer3.4",
                                        "layer3.5", "layer4.2")]
    assert result["removed"] == [] and result["totals"]["params"] == {"before": 11_689_512, "after": 21_797_672,
                                                                      "delta": 10_108_160}
    assert all(set(change["fields"]) == {"rf"} for change in result["changed"])  # later layers see further
    code, out, _ = run("diff", str(SPECS / "resnet18.cnn"), str(SPECS / "resnet18.cnn"))
    assert code == 0 and "no difference" in out
    code, out, _ = run("diff", str(SPECS / "resnet34.cnn"), str(SPECS / "resnet18.cnn"))
    assert code == 0 and "removed: 8 (56 layers, -10,108,160 params" in out
    assert "params: 21,797,672 -> 11,689,512 (-10,108,160)" in out


def test_columns_show_each_window_as_resolved() -> None:
    """`same` padding and depthwise groups are shown resolved, as the checker computed them."""
    spec = "input x: 8 x 32 x 32\noutput y = x -> conv(8, 3, stride=2, padding=same, groups=depthwise) as dw\n"
    result = runner.invoke(main, ["check", "-", "--columns", "+window"], input=spec)
    assert result.exit_code == 0, result.output
    header, _, row = result.output.splitlines()[2:5]
    assert header.split()[:9] == ["Layer", "Op", "Output", "shape", "Kernel", "Stride", "Dilation", "Padding",
                                  "Groups"]
    assert row.split()[:9] == ["dw", "conv2d", "8", "x", "16", "x", "16", "3", "2"] and " 0+1 " in row
    assert row.split()[10:12] == ["0+1", "8"]
    result = runner.invoke(main, ["check", "-", "--json"], input=spec)
    window = json.loads(result.output)["layers"][0]["window"]
    assert window == {"kernel": [3, 3], "stride": [2, 2], "dilation": [1, 1], "padding": [[0, 1], [0, 1]],
                      "groups": 8}
    result = runner.invoke(main, ["check", "-", "--columns", "name,groups"], input=spec)
    assert result.output.splitlines()[2].split() == ["Layer", "Groups"]
    result = runner.invoke(main, ["check", "-", "--columns", "name,kernal"], input=spec)
    assert result.exit_code == 2 and "unknown column(s) kernal" in result.output


def test_markdown_quotes_diagnostics_with_backticks_safely() -> None:
    result = runner.invoke(main, ["check", "-", "--format", "markdown"],
                           input="input x: 3 x 9 x 9\noutput y = x -> conv(4, 2, stride=2)\n")
    line = next(line for line in result.output.splitlines() if "W100" in line)
    assert line.startswith("- ``") and "`conv1`" in line  # the span's fence is longer than the backticks inside
    assert line.split(" (hint:")[0].endswith("``")


def test_several_specs_in_one_call_exit_with_the_worst(tmp_path: Path) -> None:
    (tmp_path / "bad.cnn").write_text("input x: 3 x 8 x 8\noutput y = x -> conv(4, 30)\n")
    result = runner.invoke(main, ["check", str(SPECS / "lenet5.cnn"), str(tmp_path / "bad.cnn")])
    assert result.exit_code == 1 and result.stdout.startswith("lenet5") and "error[E303]" in result.output
    result = runner.invoke(main, ["check", str(SPECS / "lenet5.cnn"), str(tmp_path / "bad.cnn"),
                                  str(tmp_path / "missing.cnn"), "--json"])
    assert result.exit_code == 2
    reports = json.loads(result.stdout)
    assert [report["network"] for report in reports] == ["lenet5", "bad", "missing"]
    assert [[d["code"] for d in report["diagnostics"] if d["severity"] == "error"] for report in reports] == \
        [[], ["E303"], ["E001"]]
    assert runner.invoke(main, ["check", str(SPECS / "lenet5.cnn"), str(SPECS / "mnist1d.cnn")]).exit_code == 0


def test_json_with_errors_lists_the_layers_that_checked_and_no_totals() -> None:
    spec = "input x: 3 x 8 x 8\na = x -> conv(4, 3) -> relu\nb = a -> conv(4, 30)\noutput y = [a, b] -> add\n"
    result = runner.invoke(main, ["check", "-", "--json"], input=spec)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    jsonschema.validate(report, json.loads((ROOT / "docs" / "report.schema.json").read_text()))
    assert [layer["name"] for layer in report["layers"]] == ["conv1", "relu1"]  # conv2 failed, add depends on it
    assert set(report["totals"].values()) == {None}
    assert [d["code"] for d in report["diagnostics"] if d["severity"] == "error"] == ["E303"]


def test_settings_named_below_the_command_line_have_flags() -> None:
    """Messages below the command line name a setting by meaning (diagnostics.Option); the command line shows
    its flag, which must be an option of some command."""
    import click

    from cnndsl.cli.common import FLAGS
    from cnndsl.diagnostics import Option

    def options(command: click.Command) -> set[str]:
        found = {flag for param in command.params for flag in param.opts}
        for sub in getattr(command, "commands", {}).values():
            found |= options(sub)
        return found

    assert set(FLAGS) == set(Option) and set(FLAGS.values()) <= options(main)
