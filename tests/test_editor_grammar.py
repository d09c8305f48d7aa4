"""The TextMate grammar (editors/vscode) tokenizes every .cnn file of the repository as the language
reads it, under two engines: the Python port of vscode-textmate (textmate-grammar-python, from PyPI) and,
where node and the extension's dev dependencies are installed (`make install` tries), VS Code's own
vscode-textmate. Each token our lexer finds must get its scope: comments, strings, numbers, keywords, the
arrow, built-in ops after `->`, block definitions and calls, keyword arguments; and none may be invalid."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from cnndsl.ops import REGISTRY
from cnndsl.syntax.ast import SHAPE_FUNCTIONS
from cnndsl.syntax.grammar import CONTROL, DECLARING, tokenizer
from cnndsl.syntax.textmate import grammar
from tests.conftest import ROOT, SPECS

FILES = sorted([*SPECS.rglob("*.cnn"), *(ROOT / "examples").rglob("*.cnn")])
VSCODE = ROOT / "editors" / "vscode"
Token = tuple[int, int, int, list[str]]  # line, start, end (0-based, end exclusive), scopes


def python_engine(path: Path) -> list[Token]:
    """The port, line by line (each line from a fresh start, as the repository's specs keep brackets on one
    line). It imports with a side effect, a `.textmate_cache` folder in the working directory: made in a
    temporary one."""
    with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
        from textmate_grammar.parsers.base import LanguageParser

    logging.getLogger("textmate_grammar").setLevel(logging.ERROR)  # it logs every unscoped run of text
    tokens: list[Token] = []
    for number, line in enumerate(path.read_text().splitlines()):
        parsed = LanguageParser(grammar()).parse_string(line + "\n") if line.strip() else None
        tokens += [(number, col, col + len(text), scopes) for (_, col), text, scopes in
                   (parsed.flatten() if parsed is not None else [])]
    return tokens


def node_engine(paths: list[Path]) -> dict[Path, list[Token]]:
    result = subprocess.run(["node", str(VSCODE / "tokenize.js"), *map(str, paths)], capture_output=True,
                            text=True, check=True, timeout=120)
    return {Path(name): [tuple(t) for t in tokens] for name, tokens in json.loads(result.stdout).items()}


def expected_scopes(text: str) -> list[tuple[int, int, str, str, bool]]:
    """(line, column, token, the scope it must have, whether inside parentheses) for each token whose scope
    the language fixes."""
    tokens = []
    for number, line in enumerate(text.splitlines()):
        tokens += [(number, m.start(), m.lastgroup or "", m.group()) for m in tokenizer().finditer(line)
                   if m.lastgroup not in ("ws", "nl", "cont")]
    wanted, depth = [], 0  # parentheses open
    for i, (line, col, kind, word) in enumerate(tokens):
        before = tokens[i - 1][3] if i else ""
        after = tokens[i + 1][3] if i + 1 < len(tokens) else ""
        depth += (word == "(") - (word == ")")
        scope = {"comment": "comment.line", "string": "string.quoted", "shape": "constant.numeric",
                 "int": "constant.numeric", "float": "constant.numeric"}.get(kind)
        if word == "->":
            scope = "keyword.operator.arrow"
        elif kind == "name":
            if word in CONTROL:
                scope = "keyword.control"
            elif word in DECLARING:
                scope = "storage"
            elif word in ("true", "false"):
                scope = "constant.language"
            elif before == "block":
                scope = "entity.name.function.block"
            elif after == "=" and depth > 0:
                scope = "variable.parameter"
            elif word in REGISTRY and before == "->":
                scope = "support.function.builtin"
            elif after == "(" and word not in REGISTRY and word not in SHAPE_FUNCTIONS:
                scope = "entity.name.function"
        if scope:
            wanted.append((line, col, word, scope, depth > 0))
    return wanted


def assert_scoped(path: Path, tokens: list[Token], port: bool = False) -> None:
    """`port`: the Python port leaves an operand after an arithmetic operator inside the first of two
    parenthesised groups on a line unscoped (`conv(c, padding=k // 2) -> batchnorm(eps=0.001)`: the `2`),
    where vscode-textmate and the port on `conv(c, padding=k // 2)` alone scope it: numbers inside
    parentheses are left to the vscode-textmate test there."""
    by_position: dict[tuple[int, int], list[str]] = {}
    for line, start, end, scopes in tokens:  # an engine may report a region and the tokens inside it
        for col in range(start, end):
            if len(scopes) >= len(by_position.get((line, col), [])):
                by_position[(line, col)] = scopes
    assert not [t for t in tokens if any("invalid" in s for s in t[3])], f"{path}: an invalid token"
    wrong = [(line + 1, col + 1, word, scope, by_position.get((line, col)))
             for line, col, word, scope, inside in expected_scopes(path.read_text())
             if not any(s.startswith(scope) for s in by_position.get((line, col), []))
             and not (port and inside and scope == "constant.numeric")]
    assert not wrong, f"{path}: tokens without their scope (line, col, token, wanted, got): {wrong[:5]}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_spec_tokenizes_with_its_scopes(path: Path) -> None:
    assert_scoped(path, python_engine(path), port=True)


@pytest.mark.skipif(shutil.which("node") is None or not (VSCODE / "node_modules" / "vscode-textmate").is_dir(),
                    reason="node, or the extension's dev dependencies (npm install in editors/vscode), not here")
def test_vscode_textmate_tokenizes_every_spec_the_same_way() -> None:
    for path, tokens in node_engine(FILES).items():
        assert_scoped(path, tokens)


def test_the_grammar_names_every_op_of_the_registry() -> None:
    ops = grammar()["repository"]["op"]["match"]
    alternatives = re.fullmatch(r"\\b\(\?:(.*)\)\\b", ops)
    assert alternatives is not None and set(alternatives.group(1).split("|")) == set(REGISTRY)


def test_the_extension_wires_the_grammar_and_the_server() -> None:
    manifest = json.loads((VSCODE / "package.json").read_text())
    (language,) = manifest["contributes"]["languages"]
    (tm,) = manifest["contributes"]["grammars"]
    assert language["extensions"] == [".cnn"] and tm["scopeName"] == "source.cnn"
    assert (VSCODE / tm["path"]).is_file() and (VSCODE / language["configuration"]).is_file()
    assert manifest["contributes"]["configuration"]["properties"]["cnndsl.server.command"]["default"] == ["cnndsl",
                                                                                                           "lsp"]
    assert "vscode-languageclient" in manifest["dependencies"]
    assert "cnndsl.server.command" in (VSCODE / manifest["main"]).read_text()
