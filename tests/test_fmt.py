"""`cnndsl fmt`: one layout, idempotent, comments kept, meaning unchanged (the same syntax tree, report and
graph hash), on every spec of the repository and on generated and scrambled ones."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import cnndsl
from cnndsl.cli import main
from cnndsl.syntax.fmt import format_text
from cnndsl.syntax.fmt import syntax_tree as fmt_syntax_tree
from cnndsl.syntax.parse import parse
from cnndsl.syntax.source import SourceFile
from tests.conftest import ROOT, SPECS
from tools.fuzz import Rng, _op_table, generate

runner = CliRunner()
REPOSITORY_SPECS = sorted([*SPECS.rglob("*.cnn"), *(ROOT / "examples").rglob("*.cnn")])


def syntax_tree(text: str) -> object:
    return fmt_syntax_tree(parse(SourceFile("t.cnn", text)))


def comments(text: str) -> list[str]:
    """The comments, in order (the language has no `#` inside strings but in string literals: none here)."""
    return [m.group().rstrip() for m in re.finditer(r"#[^\n]*", text)]


@pytest.mark.parametrize("spec", REPOSITORY_SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_repository_is_formatted_and_formatting_is_idempotent(spec: Path) -> None:
    text = spec.read_text()
    assert format_text(text, str(spec)) == text, f"run `cnndsl fmt {spec.relative_to(ROOT)}`"


def scrambled(text: str, rng: random.Random) -> str:
    """The same spec laid out badly: spaces added and removed around punctuation, chains joined onto one
    line or broken after `->`, blank lines doubled, indentation wrong, trailing comments added."""
    lines = []
    for number, line in enumerate(text.splitlines()):
        if rng.random() < 0.3 and "#" not in line:
            line = re.sub(r" ?(->|[=!<>]=|=|,) ?", lambda m: respaced(m.group(1), rng), line)
        if rng.random() < 0.3 and line.strip():
            line = rng.choice(["", "  ", "\t", "        "]) + line.lstrip()
        if rng.random() < 0.15 and line.strip() and "#" not in line and not line.rstrip().endswith("{"):
            line += f"   # note {number}"
        lines.append(line)
        if rng.random() < 0.1:
            lines.append("")
    if rng.random() < 0.5:  # chains onto one line, where no comment ends the line before
        joined: list[str] = []
        for line in lines:
            if joined and line.lstrip().startswith("->") and "#" not in joined[-1] and joined[-1].strip():
                joined[-1] += " " + line.strip()
            else:
                joined.append(line)
        lines = joined
    else:  # broken after `->` instead of before
        lines = [re.sub(r" -> ", lambda m: " ->\n    " if rng.random() < 0.3 else " -> ", line) if "#" not in line
                 else line for line in lines]
    return "\n".join(lines) + "\n"


def respaced(token: str, rng: random.Random) -> str:
    if token == ",":
        return token + rng.choice(["", " ", "   "])
    if token in ("->", "="):
        return rng.choice(["", " ", "  "]) + token + rng.choice(["", " ", "  "])
    return f" {token} "  # ==, !=, <=, >=: as they were


@pytest.mark.parametrize("spec", REPOSITORY_SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_scrambled_spec_formats_to_the_same_meaning(spec: Path, tmp_path: Path) -> None:
    text = spec.read_text()
    rng = random.Random(spec.name)
    messy = scrambled(text, rng)
    assert syntax_tree(messy) == syntax_tree(text)  # the scrambling itself kept the meaning
    tidy = format_text(messy, str(spec))
    assert format_text(tidy, str(spec)) == tidy
    assert syntax_tree(tidy) == syntax_tree(text)
    assert comments(tidy) == comments(messy)
    formatted = spec.parent / f".fmt-test-{spec.name}"  # beside it: its imports resolve the same
    try:
        formatted.write_text(tidy)
        before, after = cnndsl.load(spec), cnndsl.load(formatted)
        assert _report(before) == _report(after)
        assert graph_hash(before) == graph_hash(after)
    finally:
        formatted.unlink(missing_ok=True)


def _parses(text: str) -> bool:
    try:
        parse(SourceFile("t.cnn", text))
    except cnndsl.SpecError:
        return False
    return True


def _report(network: cnndsl.Network) -> object:
    """The report but where things are written (its source lines, the diagnostics' positions)."""
    data = network.report().model_dump()
    data.pop("diagnostics", None)
    data.pop("network", None)
    for layer in data["layers"]:
        layer.pop("line")
    return data


def graph_hash(network: cnndsl.Network) -> str:
    return network.graph.content_hash()


@pytest.mark.parametrize("seed", range(60))
def test_generated_specs_round_trip(seed: int) -> None:
    """Specs from the fuzzer's generator, laid out badly: the formatter keeps their syntax tree and comments
    and is idempotent (semantic errors in them do not matter: only parsing does)."""
    rng = Rng(seed)
    text = scrambled(generate(rng, _op_table()), random.Random(seed))
    if not _parses(text):
        pytest.skip("not a parsing spec")
    tidy = format_text(text)
    assert syntax_tree(tidy) == syntax_tree(text)
    assert comments(tidy) == comments(text)
    assert format_text(tidy) == tidy


@pytest.mark.parametrize(("written", "formatted"), [
    ("input x:3x8x8\noutput y=x->conv(4,3,padding=1)->relu\n",
     "input x: 3x8x8\noutput y = x -> conv(4, 3, padding=1) -> relu\n"),
    ("input x: 3 x 8 x 8\n\n\n\noutput y = x ->\n  relu\n", "input x: 3 x 8 x 8\n\noutput y = x\n    -> relu\n"),
    ("block b(c=1) {\n\n  return in -> conv(c, 3) x 2 for i as l{i+1}\n\n}\n",
     "block b(c=1) {\n    return in -> conv(c, 3) x 2 for i as l{i + 1}\n}\n"),
    ("block b() { return in }\n", "block b() {\n    return in\n}\n"),
    ("const k = -3 + 2*-1\n", "const k = -3 + 2 * -1\n"),
    ("block b(p) {  # why\n  if p {\n    return in\n  }else{\n    return in->relu  # act\n  }\n}\n",
     "block b(p) {  # why\n    if p {\n        return in\n    } else {\n        return in -> relu  # act\n    }\n}\n"),
    ("# head\n\n\ninput x: 1 x 4   # in\noutput y = x   # out\n",
     "# head\n\ninput x: 1 x 4  # in\noutput y = x    # out\n"),
    ("input x: 1 x 4\noutput y = x\n    # before relu\n    -> relu\n",
     "input x: 1 x 4\noutput y = x\n    # before relu\n    -> relu\n"),
    ("input x: 1 x 4\noutput y = x -> conv(4, 3,  # odd\n   padding=1)\n",
     "input x: 1 x 4\noutput y = x -> conv(4, 3,  # odd\n    padding=1)\n"),  # a comment in brackets: as written
])
def test_layout_rules(written: str, formatted: str) -> None:
    assert format_text(written) == formatted
    assert format_text(formatted) == formatted


def test_a_long_chain_is_broken_before_the_arrow_that_would_pass_the_width() -> None:
    layers = "".join(f" -> conv(64, 3, padding=1) as layer{i}" for i in range(6))
    text = f"input x: 3 x 8 x 8\noutput y = x{layers}\n"
    lines = format_text(text).splitlines()
    assert len(lines) > 2 and all(len(line) <= 120 for line in lines)
    assert all(line.startswith("    -> ") for line in lines[2:])


def test_fmt_command(tmp_path: Path) -> None:
    messy, tidy = "input x:1x4\noutput y=x->relu\n", "input x: 1x4\noutput y = x -> relu\n"
    spec = tmp_path / "a.cnn"
    spec.write_text(messy)
    spec.chmod(0o640)
    assert runner.invoke(main, ["fmt", str(spec), "--check"]).exit_code == 1
    result = runner.invoke(main, ["fmt", str(spec), "--diff"])
    assert result.exit_code == 0 and "\n-output y=x->relu\n" in result.output
    assert "\n+output y = x -> relu\n" in result.output
    assert spec.read_text() == messy  # --check and --diff write nothing
    result = runner.invoke(main, ["fmt", str(tmp_path)])  # a directory: its .cnn files
    assert result.exit_code == 0 and spec.read_text() == tidy and spec.stat().st_mode & 0o777 == 0o640
    assert runner.invoke(main, ["fmt", str(spec), "--check"]).exit_code == 0
    result = runner.invoke(main, ["fmt", "-"], input=messy)
    assert result.exit_code == 0 and result.output == tidy


def test_a_file_with_errors_is_reported_and_the_others_still_formatted(tmp_path: Path) -> None:
    broken, fine = tmp_path / "broken.cnn", tmp_path / "fine.cnn"
    broken.write_text("input x: 1 x 4\noutput y = x -> relu(\n")
    fine.write_text("input x:1x4\noutput y=x\n")
    result = runner.invoke(main, ["fmt", str(broken), str(fine)])
    assert result.exit_code == 1 and "broken.cnn:2" in result.output and "E101" in result.output
    assert fine.read_text() == "input x: 1x4\noutput y = x\n"
    assert broken.read_text() == "input x: 1 x 4\noutput y = x -> relu(\n"
    assert runner.invoke(main, ["fmt", str(tmp_path / "missing.cnn")]).exit_code == 2


def test_darknet_imports_are_written_formatted(tmp_path: Path) -> None:
    cfg = next((ROOT / "tests" / "data").rglob("*.cfg"))
    out = tmp_path / "imported.cnn"
    result = runner.invoke(main, ["import", "darknet", str(cfg), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["fmt", str(out), "--check"]).exit_code == 0


def test_the_syntax_tree_formatting_keeps_tells_node_kinds_and_ignores_positions() -> None:
    """What `fmt` checks against: a `return` and a plain chain hold the same fields, and differ; layout does not."""
    block = "block b() {{\n    {}\n}}\n"
    assert syntax_tree(block.format("return in -> relu")) != syntax_tree(block.format("in -> relu"))
    assert syntax_tree("input x: 3 x 8\noutput y = x -> relu\n") == syntax_tree("input x : 3x8\n\noutput y=x->relu\n")
