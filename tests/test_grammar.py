"""The grammar is the one lexer definition: the formatter's tokenizer, the token limit's count and the
editor grammar's patterns come from its terminals, and read every file of the repository into the same
tokens as the parser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnndsl.syntax import grammar as G
from cnndsl.syntax.fmt import tokens
from cnndsl.syntax.textmate import grammar as textmate_grammar
from tests.conftest import ROOT, SPECS

FILES = sorted([*SPECS.rglob("*.cnn"), *(ROOT / "examples").rglob("*.cnn")])
LAYOUT = ("nl", "ws", "cont", "comment")


def parser_tokens(text: str) -> list[str]:
    """The texts of the tokens Lark's lexer gives the parser (all terminals at once),
    newlines left out and an arrow as its `->` (the grammar's ARROW also takes the line breaks before it)."""
    found = []
    for token in G.parser().lex(text):  # every terminal at once, the newline post-lexer applied
        if token.type == "_NL":
            continue
        found.append(G.ARROW_TEXT if token.type == "ARROW" else str(token))
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_formatter_reads_the_tokens_the_parser_reads(path: Path) -> None:
    text = path.read_text()
    formatter = [tok.text for tok in tokens(text) if tok.kind not in LAYOUT]
    assert formatter == parser_tokens(text)


def test_token_count_counts_the_parser_tokens_and_the_comments() -> None:
    for path in FILES:
        text = path.read_text()
        comments = sum(1 for tok in tokens(text) if tok.kind == "comment")
        assert G.token_count(text) == len(parser_tokens(text)) + comments, path


@pytest.mark.parametrize("text, expected", [
    ("x -> conv(64, 3) # note", ["x", "->", "conv", "(", "64", ",", "3", ")", "# note"]),
    ("3x224x224 1.5e-3 2e5 a//b a<=b", ["3x224x224", "1.5e-3", "2e5", "a", "//", "b", "a", "<=", "b"]),
    ('"a b" == ! @', ['"a b"', "==", "!", "@"]),  # characters the language has no token for count one each
])
def test_token_count_table(text: str, expected: list[str]) -> None:
    assert [token for _, token in G.token_starts(text)] == expected
    assert G.token_count(text) == len(expected)


def test_the_word_groups_are_the_grammars_words() -> None:
    groups = [G.CONTROL, G.DECLARING, G.CONNECTIVES, G.LITERAL_WORDS, (G.REPEAT,)]
    listed = [word for group in groups for word in group]
    assert len(listed) == len(set(listed)), "a word in two groups"
    assert set(listed) == G.words()


def test_every_terminal_has_a_place() -> None:
    """A terminal added to the grammar must be read by the formatter and the token count: named ones are
    value or operator terminals (or layout), literals are words or operator marks."""
    layout = {"ARROW", "_NL", *G.parser().lexer_conf.ignore} - {"COMMENT"}  # spaces, continuations
    named = set(G.terminals()) - set(G.literals()) - layout
    assert named == set(G.VALUE_TERMINALS.values()) | set(G.OPERATOR_TERMINALS)
    operator = re.compile(G.operator_pattern())
    for text in set(G.literals().values()) - G.words():
        assert operator.fullmatch(text), text


def test_the_editor_grammar_uses_the_grammars_patterns() -> None:
    repository = textmate_grammar()["repository"]
    assert repository["string"]["match"] == G.terminals()["STRING"]
    assert repository["comment"]["match"] == G.terminals()["COMMENT"]
    numbers = [pattern["match"] for pattern in repository["number"]["patterns"]]
    for name in ("SHAPE_LITERAL", "FLOAT", "INT"):
        assert any(G.terminals()[name] in pattern for pattern in numbers), name


def test_the_count_pattern_captures_nothing() -> None:
    """findall returns one string per token only without capturing groups (the terminals have some)."""
    assert G._counted().groups == 0
