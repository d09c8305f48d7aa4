"""The grammar (grammars/cnn.lark), loaded once: the Lark parser and the language's tokens.

The grammar is the one lexer definition. The parser lexes with it; the formatter (`tokenizer`), the
token limit (`token_count`, E104) and the editor grammar (textmate.py) take their token patterns from
the terminals Lark reads from it, so a token changed in the grammar changes all four.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from importlib import resources

from lark import Lark, Token

_OPENERS = {"LPAR", "LSQB"}
_CLOSERS = {"RPAR", "RSQB"}

# How the language's words fall into groups (the formatter spaces and the editor colours them by group);
# tests/test_grammar.py checks that these are exactly the grammar's words.
CONTROL = ("if", "else", "for", "return")
DECLARING = ("import", "const", "network", "input", "output", "training", "block", "numbered")
CONNECTIVES = ("as", "not", "and", "or")
LITERAL_WORDS = ("true", "false")
REPEAT = "x"  # the repeat operator and shape separator: a word only between two values, a name elsewhere
KEYWORDS = frozenset({*CONTROL, *DECLARING, *CONNECTIVES})  # the words that are never a name or a value

# The text of an arrow token: the grammar's ARROW also takes the line breaks and comments before it (a
# chain may continue on a line starting with `->`), which the formatter keeps as layout of their own.
ARROW_TEXT = "->"

# Token kinds of the formatter and the editor grammar, by the grammar's terminal that defines each.
VALUE_TERMINALS = {"comment": "COMMENT", "string": "STRING", "shape": "SHAPE_LITERAL", "float": "FLOAT",
                   "int": "INT", "path": "PATH", "name": "NAME"}
OPERATOR_TERMINALS = ("COMPARE", "MUL_OP")  # regex terminals of several operators (`==`, `//`, ...)


class _NewlinePostLex:
    """Newlines end statements, except inside (...) and [...], after `->` and after a blank line
    or comment line (consecutive newlines collapse into one)."""

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        previous = None
        for token in stream:
            kind = token.type
            if kind == "_NL":
                if depth > 0 or previous in ("_NL", "ARROW"):
                    continue
            elif kind in _OPENERS:
                depth += 1
            elif kind in _CLOSERS:
                depth = max(0, depth - 1)
            previous = kind
            yield token


@cache
def grammar_text() -> str:
    return resources.files("cnndsl.syntax").joinpath("cnn.lark").read_text(encoding="utf-8")


@cache
def parser() -> Lark:
    # keep_all_tokens: the AST builder takes every rule's span from its first and last token.
    return Lark(grammar_text(), parser="lalr", lexer="contextual", postlex=_NewlinePostLex(),
                keep_all_tokens=True, maybe_placeholders=True, cache=True)


@cache
def terminals() -> dict[str, str]:
    """Each terminal of the grammar (named ones, `"word"` and punctuation literals, ignored patterns) as the
    regular expression Lark lexes it with."""
    return {terminal.name: terminal.pattern.to_regexp() for terminal in parser().terminals}


@cache
def literals() -> dict[str, str]:
    """The grammar's literal strings (`"import"`, `"("`, `"+"`), by terminal name."""
    return {terminal.name: terminal.pattern.value for terminal in parser().terminals
            if terminal.pattern.type == "str"}


def words() -> frozenset[str]:
    """The grammar's keywords: its literals that are spelled like names."""
    name = re.compile(terminals()["NAME"])
    return frozenset(text for text in literals().values() if name.fullmatch(text))


def operator_pattern() -> str:
    """Every operator and punctuation mark, longest first where one begins another (`->` before `-`,
    `==` before `=`, `//` before `/`)."""
    marks = sorted((text for text in literals().values() if text not in words()), key=lambda text: -len(text))
    return "|".join([re.escape(ARROW_TEXT), *(terminals()[name] for name in OPERATOR_TERMINALS),
                     *map(re.escape, marks)])


def _ignored(example: str) -> str:
    """The pattern of the grammar's ignored terminal (`%ignore`) that matches `example`."""
    for name in parser().lexer_conf.ignore:
        pattern = terminals()[name]
        if re.fullmatch(pattern, example):
            return pattern
    raise LookupError(f"the grammar ignores no {example!r}")


@cache
def tokenizer() -> re.Pattern[str]:
    """The formatter's tokens, as named groups: layout (`nl` one line break, `ws` spaces, `cont` a
    backslash continuation), then each of VALUE_TERMINALS and `op`, tried in that order."""
    groups = {"nl": r"\r?\n", "ws": _ignored(" "), "cont": _ignored("\\\n"),
              **{kind: terminals()[name] for kind, name in VALUE_TERMINALS.items()}, "op": operator_pattern()}
    return re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in groups.items()))


@cache
def _counted() -> re.Pattern[str]:
    # the tokens without layout, and any other character as one (text that will not parse still counts);
    # without capturing groups, findall's fastest form (a megabyte in about 0.1 s)
    pattern = "|".join([*(terminals()[name] for name in VALUE_TERMINALS.values()), operator_pattern(), r"\S"])
    return re.compile(_UNESCAPED_GROUP.sub("(?:", pattern))


_UNESCAPED_GROUP = re.compile(r"(?<!\\)\((?!\?)")  # `(` opening a capturing group (the terminals' classes hold none)


def token_count(text: str) -> int:
    """The tokens of `text` as the token limit (`Limits.tokens`, E104) counts them, comments included:
    counted by the regex engine before any parsing, so an over-long spec fails in milliseconds where
    parsing it would take seconds."""
    return len(_counted().findall(text))


def token_starts(text: str) -> Iterator[tuple[int, str]]:
    """Each token's offset and text, in order, as `token_count` counts them."""
    for match in _counted().finditer(text):
        yield match.start(), match.group()
