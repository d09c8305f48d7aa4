"""Text -> AST, with Lark (LALR, contextual lexer, positions) and friendly syntax errors.

Syntax errors become E100/E101 diagnostics whose hint comes from a labelled table of common mistakes
(``COMMON_MISTAKES``), matched with Lark's ``match_examples``.
"""

from __future__ import annotations

from lark import Token, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..diagnostics import Code, Diagnostic, Location, SpecError
from ..limits import DEFAULT_LIMITS, Limits
from . import ast as A
from .ast_builder import AstBuilder
from .grammar import literals, parser, token_count, token_starts
from .source import SourceFile

MAX_SYNTAX_ERRORS = 20
# Each syntax error costs a re-parse of the file: past this many characters in all, the rest is left to
# the next run (a 1 MB file reports its first two errors, a 50 kB one up to 20).
SYNTAX_ERROR_BUDGET = 2_000_000


def parse(source: SourceFile, limits: Limits = DEFAULT_LIMITS) -> A.Module:
    """Parse a whole file into a Module, or raise SpecError with every syntax error found.

    After a syntax error the parser resynchronises at the next top-level statement: the broken
    statement is blanked out (offsets and line numbers kept) and the file parsed again, so each broken
    statement reports once and the others are still checked. A tree nested deeper than
    `limits.nesting` (E102) and numbers out of range (E103) are reported before the AST is built.
    """
    text = source.text
    too_long = _too_many_tokens(text, limits.tokens, source.path)
    if too_long is not None:
        raise SpecError([too_long])
    diagnostics: list[Diagnostic] = []
    most = max(1, min(MAX_SYNTAX_ERRORS, SYNTAX_ERROR_BUDGET // max(len(text), 1)))
    while len(diagnostics) < most:
        try:
            tree = parser().parse(text)
        except UnexpectedInput as exc:
            diagnostics.append(_syntax_diagnostic(exc, source.path, text))
            blanked = blank_statement(text, exc.line if exc.line > 0 else len(text.splitlines()))
            if blanked == text:
                break
            text = blanked
            continue
        if not diagnostics:
            too_deep = _too_deep(tree, limits.nesting, source.path)
            if too_deep is not None:
                raise SpecError([too_deep])
            builder = AstBuilder(source.path, limits)
            module: A.Module = builder.transform(tree)
            if builder.errors:
                raise SpecError(builder.errors)
            return module
        break
    else:
        last = diagnostics[-1]
        diagnostics[-1] = Diagnostic(last.code, last.message, last.location, last.hint,
                                     (*last.notes, "checking stopped after this error: fix these and run again"))
    raise SpecError(diagnostics)


def _too_many_tokens(text: str, limit: int, path: str) -> Diagnostic | None:
    """E104 at the token past `limit`, or None."""
    if len(text) <= limit or token_count(text) <= limit:
        return None
    count = 0
    for offset, token in token_starts(text):
        if token.startswith("#"):
            continue
        count += 1
        if count > limit:
            line = text.count("\n", 0, offset) + 1
            col = offset - (text.rfind("\n", 0, offset) + 1) + 1
            return Diagnostic(Code.E104, f"the spec has more than {limit:,} tokens; checking stops here", Location(
                path, line, col), hint="a network this long is written with blocks and repeats (`block`, `x N`)")
    return None


def _too_deep(tree: Tree[Token], limit: int, path: str) -> Diagnostic | None:
    """E102 at the first token nested deeper than `limit`, found without recursion (the AST builder and
    the evaluator recurse, so they only ever see trees within the limit)."""
    stack: list[tuple[Tree[Token], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            token = _first_token(node)
            where = Location(path, token.line or 1, token.column or 1) if token else Location(path, 1, 1)
            return Diagnostic(Code.E102, f"the text nests more than {limit} levels deep here (parentheses, operators, "
                              "`if` inside `if`, or a long run of `+` terms)", where,
                              hint="split the expression with `const` definitions, or the body into blocks")
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return None


def _first_token(tree: Tree[Token]) -> Token | None:
    node: Tree[Token] | Token = tree
    while isinstance(node, Tree):
        children = [c for c in node.children if c is not None]
        if not children:
            return None
        node = children[0]
    return node


def statement_starts(text: str) -> list[int]:
    """1-based numbers of the lines where a top-level statement starts, by the post-lexer's rules: not
    inside (...), [...] or {...}, not continuing a line that ends with `->` or `\\`, not starting with `->`."""
    starts = []
    depth = 0  # brackets and braces together: a statement ends only outside all of them
    continued = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].rstrip()
        stripped = line.strip()
        if stripped and depth == 0 and not continued and not stripped.startswith("->"):
            starts.append(number)
        for char in line:
            if char in "([{":
                depth += 1
            elif char in ")]}":
                depth = max(0, depth - 1)
        if stripped:
            continued = stripped.endswith("->") or stripped.endswith("\\")
    return starts


def blank_statement(text: str, line: int) -> str:
    """The text with the top-level statement around `line` replaced by spaces (newlines kept)."""
    starts = statement_starts(text)
    first = max((s for s in starts if s <= line), default=1)
    last = min((s - 1 for s in starts if s > line), default=len(text.splitlines()))
    lines = text.splitlines(keepends=True)
    for index in range(first - 1, min(last, len(lines))):
        body = lines[index].rstrip("\r\n")
        lines[index] = " " * len(body) + lines[index][len(body):]
    return "".join(lines)


# ---- friendly syntax errors ---------------------------------------------------------------------

def _chain_contexts(*chains: str) -> list[str]:
    """A chain fragment (starting from `x`) as a statement, an assignment, an output and a block's
    return: the parser is in a different state in each, and hints match on the state."""
    examples = []
    for chain in chains:
        in_block = chain.replace("x", "in", 1)
        examples += [f"input x: 1 x 8\n{chain}\n", f"input x: 1 x 8\ny = {chain}\n",
                     f"input x: 1 x 8\noutput y = {chain}\n", f"block f(c) {{\n  return {in_block}\n}}\n"]
    return examples


# label -> (hint, examples that fail the same way). Tested in tests/test_diagnostics.py.
COMMON_MISTAKES: dict[str, tuple[str, list[str]]] = {
    "missing_arrow": (
        "layers in a chain are joined with `->`: `x -> conv(16, 3) -> relu`",
        _chain_contexts("x -> conv(16, 3) relu", "x -> relu relu", "x relu"),
    ),
    "wrong_arrow": (
        "the chain operator is `->`",
        _chain_contexts("x => relu", "x > relu", "x - relu"),
    ),
    "keyword_colon": (
        "keyword arguments use `=`: `conv(16, kernel=3)`",
        _chain_contexts("x -> conv(16, kernel: 3)", "x -> conv(kernel: 3)"),
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


# The named terminals as an error message says them; a literal (`(`, `if`) is said as written.
_TOKEN_NAMES = {
    "ARROW": "`->`", "_NL": "end of line", "$END": "end of file", "NAME": "a name", "INT": "an integer",
    "FLOAT": "a number", "STRING": "a string", "COMPARE": "a comparison", "MUL_OP": "`*`, `/`, `//` or `%`",
    "SHAPE_LITERAL": "a shape",
}


def _describe_token(name: str) -> str:
    if name in _TOKEN_NAMES:
        return _TOKEN_NAMES[name]
    return f"`{literals().get(name, name.lower())}`"


_OPERATORS = {"COMPARE", "PLUS", "MINUS", "MUL_OP", "AND", "OR", "NOT", "IF"}


def _describe_expected(expected: set[str]) -> str:
    wanted = {e for e in expected if not e.startswith("__")}
    names = sorted({_describe_token(e) for e in wanted - _OPERATORS})
    if wanted & _OPERATORS:
        names.append("an operator")
    if len(names) > 8:
        return "; expected a statement or an expression"
    return "; expected " + ", ".join(names) if names else ""


def _syntax_diagnostic(exc: UnexpectedInput, path: str, text: str) -> Diagnostic:
    """The diagnostic for one syntax error in `text`, the text the parser saw (after earlier broken
    statements were blanked out; offsets and lines are those of the file at `path`)."""
    line, col = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        position = exc.pos_in_stream or 0
        char = text[position] if position < len(text) else "?"
        expected = _real(exc.allowed, text, line, col)
        code, message = Code.E100, f"unexpected `{char}`{_describe_expected(expected)}"
    elif isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        token = exc.token
        shown = "end of line" if token.type == "_NL" else f"`{token}`"
        expected = _real(exc.expected, text, line, col)
        code, message = Code.E100, f"unexpected {shown}{_describe_expected(expected)}"
        if token.type == "_NL":  # point at the end of the line, not at the next one
            line, col = token.line or line, token.column or col
    else:
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        expected = set(getattr(exc, "expected", ()) or ())
        code, message = Code.E101, "unexpected end of file" + _describe_expected(expected)
    hint = _unclosed_bracket(text, line, col) or _hint_for(exc)
    if line < 1:
        line, col = 1, 1
    return Diagnostic(code, message, Location(path, line, max(col, 1)), hint)


def _real(expected: object, text: str, line: int, col: int) -> set[str]:
    """Expected terminals, less the newline inside brackets (the post-lexer accepts newlines in every
    state and drops them inside brackets, so there it is never a real option)."""
    names = set(expected or ())  # type: ignore[call-overload]
    if _open_brackets(text, line, col):
        names.discard("_NL")
    return names


def _open_brackets(text: str, line: int, col: int) -> list[tuple[str, int, int]]:
    """The `(` and `[` still open at (line, col), with their positions, innermost last."""
    open_brackets: list[tuple[str, int, int]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if number > line:
            break
        code = raw.split("#", 1)[0]
        for index, char in enumerate(code, start=1):
            if number == line and index >= col:
                break
            if char in "([":
                open_brackets.append((char, number, index))
            elif char in ")]" and open_brackets:
                open_brackets.pop()
    return open_brackets


def _unclosed_bracket(text: str, line: int, col: int) -> str | None:
    """A hint naming a `(` or `[` opened on an earlier line and still open where the error is: the
    newlines inside it were read as part of one statement, so the error shows up later."""
    earlier = [b for b in _open_brackets(text, line, col) if b[1] < line]
    if not earlier:
        return None
    char, number, index = earlier[-1]
    return f"the `{char}` opened at line {number}, column {index} is never closed"


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
