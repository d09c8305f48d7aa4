"""Text -> AST, with Lark (LALR, contextual lexer, positions) and friendly syntax errors.

Syntax errors become E100/E101 diagnostics whose hint comes from a labelled table of common mistakes
(``COMMON_MISTAKES``), matched with Lark's ``match_examples``.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from importlib import resources

from lark import Lark, Token, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..diagnostics import Diagnostic, Location, SpecError
from . import ast as A
from .ast_builder import AstBuilder
from .source import SourceFile

_OPENERS = {"LPAR", "LSQB"}
_CLOSERS = {"RPAR", "RSQB"}


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


def parse(source: SourceFile) -> A.Module:
    """Parse a whole file into a Module, or raise SpecError with a located syntax diagnostic."""
    try:
        tree = parser().parse(source.text)
    except UnexpectedInput as exc:
        raise SpecError([_syntax_diagnostic(exc, source)]) from None
    module: A.Module = AstBuilder(source.path).transform(tree)
    return module


# ---- friendly syntax errors ---------------------------------------------------------------------

# label -> (hint, examples that fail the same way). Tested in tests/test_syntax_errors.py.
COMMON_MISTAKES: dict[str, tuple[str, list[str]]] = {
    "missing_arrow": (
        "layers in a chain are joined with `->`: `x -> conv(16, 3) -> relu`",
        ["input x: 1 x 8\nx -> conv(16, 3) relu\n", "input x: 1 x 8\nx -> relu relu\n",
         "input x: 1 x 8\nx relu\n"],
    ),
    "wrong_arrow": (
        "the chain operator is `->`",
        ["input x: 1 x 8\nx => relu\n", "input x: 1 x 8\nx > relu\n", "input x: 1 x 8\nx - relu\n"],
    ),
    "keyword_colon": (
        "keyword arguments use `=`: `conv(16, kernel=3)`",
        ["input x: 1 x 8\nx -> conv(16, kernel: 3)\n"],
    ),
    "input_colon": (
        "an input declares its per-sample shape after a colon: `input x: 3 x 224 x 224`",
        ["input x 3 x 32 x 32\n", "input x = 3 x 32\n"],
    ),
    "chain_without_source": (
        "a chain starts from a tensor: `y = x -> relu`, or feeds several with `[a, b] -> add`",
        ["input x: 1 x 8\n-> relu\n", "input x: 1 x 8\ny = -> relu\n",
         "input x: 1 x 8\ny = conv(3, 3) -> relu\n"],
    ),
    "shape_separator": (
        "dimensions of a shape are separated by `x`: `3 x 224 x 224` or `3x224x224`",
        ["input x: 3, 224, 224\n", "input x: 3 * 224 x\n"],
    ),
    "else_on_new_line": (
        "write `} else {` on one line",
        ["block f(c) {\n  if c > 1 {\n    return in\n  }\n  else {\n    return in\n  }\n}\n"],
    ),
}


_TOKEN_NAMES = {
    "ARROW": "`->`", "_NL": "end of line", "$END": "end of file", "NAME": "a name", "INT": "an integer",
    "FLOAT": "a number", "STRING": "a string", "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`",
    "LBRACE": "`{`", "RBRACE": "`}`", "COMMA": "`,`", "COLON": "`:`", "EQUAL": "`=`", "COMPARE": "a comparison",
    "PLUS": "`+`", "MINUS": "`-`", "MUL_OP": "`*`, `/`, `//` or `%`", "SHAPE_LITERAL": "a shape",
}


def _describe_token(name: str) -> str:
    if name in _TOKEN_NAMES:
        return _TOKEN_NAMES[name]
    return f"`{name.lower()}`"  # keywords: IF, ELSE, AS, X, ...


def _describe_expected(expected: set[str]) -> str:
    names = sorted({_describe_token(e) for e in expected if not e.startswith("__")})
    if len(names) > 8:
        return "; expected a statement, an expression or `->`"
    return "; expected " + ", ".join(names) if names else ""


def _syntax_diagnostic(exc: UnexpectedInput, source: SourceFile) -> Diagnostic:
    line, col = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        position = exc.pos_in_stream or 0
        char = source.text[position] if position < len(source.text) else "?"
        code, message = "E100", f"unexpected character `{char}`"
    elif isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        token = exc.token
        shown = "end of line" if token.type == "_NL" else f"`{token}`"
        code, message = "E100", f"unexpected {shown}{_describe_expected(set(exc.expected))}"
        if token.type == "_NL":  # point at the end of the line, not at the next one
            line, col = token.line or line, token.column or col
    else:
        lines = source.text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        expected = set(getattr(exc, "expected", ()) or ())
        code, message = "E101", "unexpected end of file" + _describe_expected(expected)
    hint = _hint_for(exc)
    if line < 1:
        line, col = 1, 1
    return Diagnostic(code, message, Location(source.path, line, max(col, 1)), hint)


def _hint_for(exc: UnexpectedInput) -> str | None:
    if isinstance(exc, UnexpectedEOF):
        return "a `(`, `[` or `{` may be left open"
    examples = {label: texts for label, (_, texts) in COMMON_MISTAKES.items()}
    try:
        label = exc.match_examples(parser().parse, examples, use_accepts=True)
    except Exception:  # match_examples re-parses; a hint is optional, never fatal
        return None
    if label is None and isinstance(exc, UnexpectedToken) and exc.token.type == "$END":
        return "a `(`, `[` or `{` may be left open"
    return COMMON_MISTAKES[label][0] if label else None
