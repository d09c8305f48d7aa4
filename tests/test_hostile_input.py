"""Hostile input: each case is the minimal spec or file that once crashed, hung or leaked, with the code
and exit status it must now give (docs/robustness.md lists the limits and why)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import cnndsl
from cnndsl.cli import main
from cnndsl.diagnostics import SpecError, UsageError
from cnndsl.limits import Limits
from cnndsl.report.diagnostics import printable, render_diagnostics
from tests.conftest import ROOT, SpecFiles

NET = "input x: 1 x 8\noutput y = x -> relu\n"
BIG = "1" * 5000

# name -> (spec text, code of the first error, fragment of its message)
SPEC_CASES: dict[str, tuple[str, str, str]] = {
    "a 5,000-digit integer": (f"const a = {BIG}\n" + NET, "E103", "(5,000 characters) is out of range"),
    "a 5,000-digit shape": (f"input x: 1 x {BIG}\noutput y = x\n", "E103", "out of range"),
    "a 5,000-digit stride": (f"input x: 1 x 8\noutput y = x -> maxpool(2, stride={BIG})\n", "E103", "out of range"),
    "a shape literal past 2^63": ("input x: 3x99999999999999999999\noutput y = x\n", "E103", "out of range"),
    "a product past 2^63": ("const a = 10000000000 * 10000000000\n" + NET, "E208", "is out of range"),
    "a float past 1.8e308": ("const a = 1e400 * 1.5\n" + NET, "E103", "the number 1e400 is out of range"),
    "a float product past 1.8e308": ("const a = 1e300 * 1e300\n" + NET, "E208", "not a finite number"),
    "a spec of 200,000 tokens": ("const a = " + "(" * 100_000 + "1" + ")" * 100_000 + "\n" + NET, "E104",
                                 "more than 150,000 tokens"),
    "1,000 terms of `1 + 1`": ("const a = " + " + ".join(["1"] * 1000) + "\n" + NET, "E102", "nests more than"),
    "1,000 nested parentheses": ("const a = " + "(" * 1000 + "1" + ")" * 1000 + "\n" + NET, "E102", "nests"),
    "1,000 nested minus signs": ("const a = " + "-" * 1000 + "1\n" + NET, "E102", "nests"),
    "1,000 nested `not`": ("const a = " + "not " * 1000 + "true\n" + NET, "E102", "nests"),
    "1,000 nested conditionals": ("const a = " + "1 if true else " * 1000 + "1\n" + NET, "E102", "nests"),
    "`if` nested 500 deep": (NET.replace("output", "if true {\n" * 500 + "output") + "}\n" * 500, "E102", "nests"),
    "500 `else if`": ("input x: 1 x 8\nif false {\n  y = x\n}" + " else if false {\n  y = x\n}" * 500
                      + "\noutput z = x\n", "E102", "nests"),
    "a block call chain 200 deep": ("".join(f"block b{i}() {{\n  return in -> b{i + 1}\n}}\n" for i in range(200))
                                    + "block b200() {\n  return in -> relu\n}\n"
                                    + "input x: 1 x 8\noutput y = x -> b0\n", "E210", "nest more than 100 deep"),
    "an input redeclared after a bad one": ("input x: 0 x 8\ninput x: 1 x 8\noutput y = x -> relu\n", "E304",
                                            "non-positive dimension 0"),
    "a block that adds no layer, a billion times": ("block id() {\n  return in\n}\ninput x: 1 x 8\n"
                                                    "output y = x -> id x 1000000000\n", "E210", "repeats past"),
    "a block that adds no layer, nested repeats": ("block id() {\n  return in\n}\nblock many() {\n"
                                                   "  return in -> id x 9000\n}\ninput x: 1 x 8\n"
                                                   "output y = x -> many x 9000\n", "E210", "expansion steps"),
    "`relu x 1000000000`": ("input x: 1 x 8\noutput y = x -> relu x 1000000000\n", "E210", "repeats past"),
    "an import of /etc/passwd": ('import "/etc/passwd"\n' + NET, "E500", "only .cnn files can be imported"),
    "an import escaping the tree": ('import "../../../../../../etc/x.cnn"\n' + NET, "E500", "outside the directories"),
    "an absolute import": ('import "/tmp/x.cnn"\n' + NET, "E500", "outside the directories"),
    "an import of /dev/zero": ('import "/dev/zero"\n' + NET, "E500", "only .cnn files"),
    "a NUL byte in an import": ("#" * 9000 + '\nimport "a\x00b.cnn"\n' + NET, "E500", "is not a file name"),
    "a 5,000-character import": (f'import "{"a" * 5000}.cnn"\n' + NET, "E500", "the path is too long"),
}


@pytest.mark.parametrize("name", sorted(SPEC_CASES))
def test_hostile_spec_is_a_located_error(specs: SpecFiles, name: str) -> None:
    text, code, fragment = SPEC_CASES[name]
    start = time.perf_counter()
    errors = specs.errors(text)
    assert time.perf_counter() - start < 60  # a hang guard only; speed is in benchmarks/check_speed.py
    assert errors[0].code == code and fragment in errors[0].message, [e.headline() for e in errors]
    assert errors[0].location is not None


def test_a_huge_adaptive_pool_is_checked_without_listing_its_windows(specs: SpecFiles) -> None:
    network = specs.load("input x: 1 x 8\noutput y = x -> adaptive_avgpool(100000000)\n")
    assert network.report().layers[-1].shape == [1, 100_000_000]


def test_errors_stop_at_the_limit_and_say_so(specs: SpecFiles) -> None:
    text = "input x: 1 x 8\n" + "".join(f"y{i} = x -> nope{i}\n" for i in range(500)) + "output y = x\n"
    errors = specs.errors(text)
    assert len(errors) == Limits().errors
    assert any("checking stopped after 100 errors" in note for note in errors[-1].notes)


def test_one_line_reports_a_bounded_number_of_errors(specs: SpecFiles) -> None:
    args = ", ".join(f"bogus{i}=1" for i in range(20_000))
    errors = specs.errors(f"input x: 1 x 8\noutput y = x -> conv(8, 1, {args})\n")
    assert len(errors) == 10 and "further diagnostics on this line are not shown" in errors[-1].notes[-1]
    rendered = render_diagnostics(errors)
    assert len(rendered) < 10_000  # each quotes at most Limits.quoted_line characters of the line


def test_did_you_mean_is_bounded_on_thousands_of_names(specs: SpecFiles) -> None:
    tensors = "".join(f"t{i} = x -> relu\n" for i in range(3000))
    unknown = "".join(f"u{i} = q{i} -> relu\n" for i in range(3000))
    start = time.perf_counter()
    errors = specs.errors("input x: 1 x 8\n" + tensors + unknown + "output y = x\n")
    assert len(errors) == Limits().errors and time.perf_counter() - start < 30


def test_escape_sequences_in_a_spec_are_printed_escaped(specs: SpecFiles) -> None:
    errors = specs.errors("input x: 1 x 8\noutput y = x -> relu \x1b[2J\x1b]0;title\x07 \x1b]8;;http://x\x1b\\l\r\n")
    rendered = render_diagnostics(errors)
    assert "\x1b" not in rendered and "\x07" not in rendered and "\r" not in rendered
    assert "\\x1b[2J" in rendered


@pytest.mark.parametrize(("text", "shown"), [
    ("plain", "plain"), ("a\x1bb", "a\\x1bb"), ("cr\r", "cr\\x0d"), ("bidi\u202e", "bidi\\u202e"),
    ("c1\x9b", "c1\\x9b"), ("tab\tx", "tab x"), ("caf\u00e9", "caf\u00e9"),
])
def test_printable(text: str, shown: str) -> None:
    assert printable(text) == shown


# ---- files that are not specs ------------------------------------------------------------------------

def _usage_error(path: Path) -> str:
    with pytest.raises(UsageError) as info:
        cnndsl.load(path)
    return str(info.value)


def test_devices_fifos_and_loops_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.cnn"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    (tmp_path / "a.cnn").symlink_to(tmp_path / "b.cnn")
    (tmp_path / "b.cnn").symlink_to(tmp_path / "a.cnn")
    assert "is a device" in _usage_error(Path("/dev/zero"))
    assert "is a FIFO" in _usage_error(fifo)
    assert "loop of symbolic links" in _usage_error(tmp_path / "a.cnn")
    assert "NUL byte" in _usage_error(Path("a\x00b.cnn"))
    assert "too long" in _usage_error(tmp_path / ("n" * 5000 + ".cnn"))


def test_a_file_past_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.cnn"
    path.write_text(NET + "\n" * 1_000_001)
    assert "is larger than 1,000,000 bytes" in _usage_error(path)


def _shared_blocks_and_a_spec(root: Path, import_line: str) -> tuple[Path, Path]:
    """root/library/blocks.cnn (a block library) and root/nets/net.cnn importing it with `import_line`."""
    shared = root / "library"
    shared.mkdir()
    (shared / "blocks.cnn").write_text("block twice() {\n  return in -> relu -> relu\n}\n")
    spec = root / "nets" / "net.cnn"
    spec.parent.mkdir()
    spec.write_text(f"{import_line}\ninput x: 1 x 8\noutput y = x -> twice\n")
    return shared, spec


def test_imports_resolve_inside_the_tree_or_the_import_path(tmp_path: Path) -> None:
    shared, spec = _shared_blocks_and_a_spec(tmp_path, 'import "../library/blocks.cnn"')
    with pytest.raises(SpecError) as info:
        cnndsl.load(spec)
    assert info.value.diagnostics[0].code == "E500" and "outside the directories" in info.value.diagnostics[0].message
    assert len(cnndsl.load(spec, import_path=[shared]).graph) == 3
    spec.write_text('import "blocks.cnn"\ninput x: 1 x 8\noutput y = x -> twice\n')  # found on the import path
    assert len(cnndsl.load(spec, import_path=[shared]).graph) == 3


def test_cnndsl_path_allows_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared, spec = _shared_blocks_and_a_spec(tmp_path, 'import "blocks.cnn"')
    assert CliRunner().invoke(main, ["check", str(spec)]).exit_code == 1
    monkeypatch.setenv("CNNDSL_PATH", str(shared))
    assert CliRunner().invoke(main, ["check", str(spec)]).exit_code == 0
    assert CliRunner().invoke(main, ["check", str(spec), "--import-path", str(shared)]).exit_code == 0


# ---- the command line ----------------------------------------------------------------------------

def _cnndsl(*args: str, stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cnndsl.cli", *args], capture_output=True, text=True,
                          stdin=stdin, timeout=120, cwd=ROOT, check=False)


@pytest.mark.parametrize("path", ["/dev/stdin", "/dev/zero", "/dev/urandom"])
def test_special_files_on_the_command_line_exit_2(path: str) -> None:
    done = _cnndsl("check", path)
    assert done.returncode == 2 and "error[E001]" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "x=3x" + "9" * 30], "sizes below 10^18"),
    (["--max-layers", "0"], "--max-layers"),
])
def test_out_of_range_options_exit_2(args: list[str], message: str) -> None:
    done = _cnndsl("check", "specs/lenet5.cnn", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_max_layers_raises_the_limit(specs: SpecFiles) -> None:
    path = specs.write("input x: 1 x 8\noutput y = x -> relu x 12000\n")
    assert _cnndsl("check", str(path)).returncode == 1
    assert _cnndsl("check", str(path), "--max-layers", "20000").returncode == 0


def _wait_for_cpu_seconds(pid: int, seconds: float) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return  # finished already
        if (int(fields[11]) + int(fields[12])) / ticks >= seconds:  # utime + stime
            return
        time.sleep(0.05)


def test_ctrl_c_exits_130(specs: SpecFiles) -> None:
    path = specs.write("input x: 1 x 8\noutput y = x -> relu x 10000\n")
    process = subprocess.Popen([sys.executable, "-m", "cnndsl.cli", "check", str(path), "--max-layers", "10000"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_cpu_seconds(process.pid, 1.0)  # past the imports (a third of that), expanding the layers
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the check finished before the signal")
    assert process.returncode == 130 and "interrupted" in err and "Traceback" not in err


def test_warnings_of_one_kind_are_bounded(specs: SpecFiles) -> None:
    unused = "".join(f"t{i} = x -> relu\n" for i in range(500))
    network = specs.load("input x: 1 x 8\n" + unused + "output y = x -> relu\n")
    w101 = [d for d in network.diagnostics if d.code == "W101"]
    assert len(w101) == 50 and "further W101 diagnostics are not shown" in w101[-1].notes[-1]


def test_a_failed_constant_is_reported_once(specs: SpecFiles) -> None:
    errors = specs.errors("const a = 10000000000 * 10000000000\ninput x: 1 x a\noutput y = x -> conv(a, a)\n")
    assert [e.code for e in errors] == ["E208"]


def test_an_import_of_a_fifo_inside_the_tree_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "blocks.cnn")
    spec = tmp_path / "net.cnn"
    spec.write_text('import "blocks.cnn"\n' + NET)
    with pytest.raises(SpecError) as info:
        cnndsl.load(spec)
    assert "is a FIFO" in info.value.diagnostics[0].message


def test_a_missing_optional_package_is_a_usage_error(specs: SpecFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "cnndsl.backends.tvm", raising=False)  # imported again, as if TVM were
    monkeypatch.setitem(sys.modules, "tvm", None)  # not installed
    result = CliRunner().invoke(main, ["compile", str(specs.write(NET)), "--to", "tvm"])
    assert result.exit_code == 2 and "install with: pip install 'cnndsl[tvm]'" in result.output, result.output
    assert "Traceback" not in result.output


def test_fuzz_finding_groupnorm_of_single_values_is_an_error(specs: SpecFiles) -> None:
    """tools/fuzz.py found it: the check passed and PyTorch refused to run the network."""
    errors = specs.errors("input x: 1 x 32 x 5\nt0 = x -> crop(1, offset=1)\noutput y = t0 -> groupnorm(1)\n")
    assert errors[0].code == "E306" and "normalises groups of a single value" in errors[0].message
    assert specs.load("input x: 2 x 1 x 1\noutput y = x -> groupnorm(1)\n")  # two values per group


@pytest.mark.parametrize("text", [
    "t = x -> relu x 1 as n -> relu x 1 as n\noutput y = t\n",  # found by tools/fuzz.py: an invariant error
    "t = x -> relu x 3 as n\nu = t -> relu x 2 as n\noutput y = u\n",
    "a = x -> twice as blk\nc = x -> twice as blk\noutput y = [a, c] -> add\n",
    "a = x -> twice x 2 as blk\nc = x -> relu x 2 as blk\noutput y = [a, c] -> add\n",
])
def test_names_reused_by_repeats_and_blocks_are_e202(specs: SpecFiles, text: str) -> None:
    errors = specs.errors("block twice() {\n  return in -> relu -> relu\n}\ninput x: 1 x 8\n" + text)
    assert [e.code for e in errors] == ["E202"], [e.headline() for e in errors]
