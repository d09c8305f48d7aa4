"""`cnndsl fmt`: one layout for .cnn files, comments kept where they were.

The layout: four spaces per block level; one statement per line; one space around `=`, `->`,
arithmetic and comparison operators, the `x` of shapes and repeats, and after commas and colons; none
inside brackets; a call's arguments on one line; at most one blank line in a row, none at the start or
end of a block or the file. A chain's line breaks are the author's (they group layers: a convolution,
its norm and activation on one line), always written before `->` and indented one level; a chain line
past WIDTH columns is broken before the `->` that would pass it. Own-line comments keep their line, at
the indentation of what follows; trailing comments stay after their code, two spaces from it. A
statement with a comment inside its brackets is left as written, re-indented only.

Formatting works on the tokens, not the syntax tree (which keeps no comments). Two checks make it safe:
the text must parse before (a file with errors is not formatted), and the formatted text must parse to
the same syntax tree, positions aside (else FormatError: a bug here, and the file is left alone).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..diagnostics import SpecError
from ..limits import DEFAULT_LIMITS, Limits
from .grammar import KEYWORDS, tokenizer
from .parse import parse
from .source import SourceFile

WIDTH = 120
INDENT = "    "
BINARY = {"=", "->", "==", "!=", "<=", ">=", "<", ">", "+", "*", "/", "//", "%"}


class FormatError(Exception):
    """The formatter would change what the file means (a bug in the formatter: the file is left alone)."""


@dataclass(frozen=True)
class Tok:
    kind: str  # nl, cont, comment, string, shape, float, int, name, op
    text: str
    line: int


@dataclass
class Statement:
    """One statement: its segments (a chain's lines, each starting with `->` after the first), the own-line
    comments before each segment, and each segment's trailing comment."""

    depth: int
    segments: list[list[Tok]] = field(default_factory=lambda: [[]])
    comments_before: dict[int, list[str]] = field(default_factory=dict)
    trailing: dict[int, str] = field(default_factory=dict)
    verbatim: bool = False  # a comment inside brackets: written as it was, re-indented
    first_line: int = 0
    last_line: int = 0


Item = tuple[str, int, Any]  # ("blank", 0, None) | ("comment", depth, text) | ("statement", depth, Statement)


def tokens(text: str) -> list[Tok]:
    found, line, position = [], 1, 0
    pattern = tokenizer()
    while position < len(text):
        match = pattern.match(text, position)
        if match is None:  # unreachable for text that parses: the grammar's tokens are all here
            raise FormatError(f"line {line}: cannot read {text[position]!r}")
        kind = match.lastgroup or ""
        if kind == "path":  # `backbone.layer3` is laid out as a name is
            kind = "name"
        if kind != "ws":
            found.append(Tok(kind, match.group().rstrip("\r\n") if kind == "nl" else match.group(), line))
        line += match.group().count("\n")
        position = match.end()
    return found


def format_text(text: str, path: str = "<text>", limits: Limits = DEFAULT_LIMITS) -> str:
    """`text` in the canonical layout. SpecError when it does not parse; FormatError (a bug) when the
    result would not parse to the same syntax tree."""
    before = parse(SourceFile(path, text), limits)
    formatted = render(structure(tokens(text)), text)
    try:
        after = parse(SourceFile(path, formatted), limits)
    except SpecError as exc:
        raise FormatError(f"the formatted text of {path} does not parse ({exc}); the file is left as it was") from exc
    if syntax_tree(before) != syntax_tree(after):
        raise FormatError(f"formatting {path} would change its syntax tree; the file is left as it was")
    return formatted


def syntax_tree(module: Any) -> Any:
    """A parsed module as plain data, positions left out: what formatting must keep (each node named by its
    class, so that a `return` turned into a plain chain, say, is a change)."""
    def strip(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {"node": type(value).__name__, **{f.name: strip(getattr(value, f.name))
                                                     for f in dataclasses.fields(value) if f.name not in POSITIONS}}
        if isinstance(value, list | tuple):
            return [strip(v) for v in value]
        return value

    return strip(module)


POSITIONS = {"line", "col", "end_line", "end_col"}


class _Builder:
    """Tokens -> items: statements (split at body braces and chain breaks), comments and blank lines."""

    def __init__(self, toks: list[Tok]):
        self.toks = toks
        self.items: list[Item] = []
        self.depth = 0  # block level
        self.brackets = 0  # ( and [ open in the current statement
        self.current: Statement | None = None
        self.line_has_code = False
        self.after_arrow = False  # the statement's last token is `->` (the line broke after it)
        self.break_pending = False  # a newline inside the statement at bracket depth 0
        self.templates = 0  # name templates (`as layer{i + 1}`) open: their `}` closes no block
        # the text of the next code token after each token (one pass backwards: newlines and comments may
        # stand between a chain's lines, and asking at each of them would be quadratic)
        self.next_code: list[str] = [""] * len(toks)
        following = ""
        for index in range(len(toks) - 1, -1, -1):
            self.next_code[index] = following
            if toks[index].kind not in ("nl", "cont", "comment"):
                following = toks[index].text

    def build(self) -> list[Item]:
        newlines = 0
        for index, tok in enumerate(self.toks):
            if tok.kind in ("nl", "cont"):
                newlines += 1
                self.line_has_code = False
                if self.current is not None and self.brackets == 0:
                    if tok.kind == "nl" and not self.after_arrow and self.next_code[index] != "->":
                        self.finish()
                    else:
                        self.break_pending = True
                continue
            if tok.kind == "comment":
                self.comment(tok, newlines)
                newlines = 0
                continue
            if newlines >= 2 and self.current is None:
                self.items.append(("blank", 0, None))
            newlines = 0
            self.code(tok, index)
            self.line_has_code = True
        self.finish()
        return self.items

    def comment(self, tok: Tok, newlines: int) -> None:
        if self.current is None and self.line_has_code and self.items and self.items[-1][0] == "statement":
            finished: Statement = self.items[-1][2]  # `block f(c) {  # why`: the header's comment
            finished.trailing[len(finished.segments) - 1] = tok.text
            return
        if self.current is None:
            if newlines >= 2 and self.items:
                self.items.append(("blank", 0, None))
            self.items.append(("comment", self.depth, tok.text))
        elif self.line_has_code:
            if self.brackets:
                self.current.verbatim = True
            segment = len(self.current.segments) - 1
            self.current.trailing[segment] = tok.text
        else:
            if self.brackets:
                self.current.verbatim = True
            self.current.comments_before.setdefault(len(self.current.segments), []).append(tok.text)
        if self.current is not None:
            self.current.last_line = max(self.current.last_line, tok.line)

    def code(self, tok: Tok, index: int) -> None:
        text = tok.text
        if text == "}" and self.brackets == 0 and self.templates:
            self.templates -= 1
        elif text == "}" and self.brackets == 0:
            self.finish()
            self.depth = max(0, self.depth - 1)
        if self.current is None:
            self.current = Statement(self.depth, first_line=tok.line, last_line=tok.line)
        statement = self.current
        if self.break_pending and self.brackets == 0 and text == "->" and statement.segments[-1]:
            statement.segments.append([])
        elif self.after_arrow and self.break_pending and statement.segments[-1]:
            # the line broke after `->`: the break goes before it
            arrow = statement.segments[-1].pop()
            if statement.segments[-1]:
                statement.segments.append([arrow])
            else:  # the line held only `->`
                statement.segments[-1].append(arrow)
        self.break_pending = False
        statement.segments[-1].append(tok)
        statement.last_line = tok.line
        self.after_arrow = text == "->" and self.brackets == 0
        if text in "([":
            self.brackets += 1
        elif text in ")]":
            self.brackets = max(0, self.brackets - 1)
        elif text == "{" and self.brackets == 0 and _is_template(statement.segments[-1][-3:-1]):
            self.templates += 1
        elif text == "{" and self.brackets == 0:
            self.finish()
            self.depth += 1

    def finish(self) -> None:
        if self.current is not None and any(self.current.segments):
            self.items.append(("statement", self.current.depth, self.current))
        self.current = None
        self.brackets = self.templates = 0
        self.after_arrow = False
        self.break_pending = False


def _is_template(before: list[Tok]) -> bool:
    return len(before) >= 2 and before[-2].text == "as" and before[-1].kind == "name"


def structure(toks: list[Tok]) -> list[Item]:
    return _Builder(toks).build()


def _value_end(tok: Tok | None) -> bool:
    if tok is None:
        return False
    if tok.kind == "name":
        return tok.text not in KEYWORDS
    return tok.kind in ("int", "float", "string", "shape") or tok.text in (")", "]", "}")


def _is_repeat_or_shape_x(previous: Tok | None, tok: Tok, following: Tok | None) -> bool:
    """`x` between two values is the shape separator or the repeat operator, not a name."""
    return tok.text == "x" and _value_end(previous) and following is not None and (
        following.kind in ("int", "name", "float") or following.text in ("(", "-"))


def spaced(segment: list[Tok]) -> str:
    """A segment's tokens with the layout's spacing (one pass: a 50,000-layer chain formats in a second)."""
    roles = []  # per token: "op" (binary, spaced), "unary", "keyword" (`stride=2`), or ""
    templates: list[bool] = []  # per token: a brace of a name template (`as layer{i + 1}`), not of a block
    depth, braces = 0, []  # open parentheses and brackets; the open braces' template flags
    for i, tok in enumerate(segment):
        previous = segment[i - 1] if i else None
        following = segment[i + 1] if i + 1 < len(segment) else None
        depth += (tok.text in ("(", "[")) - (tok.text in (")", "]"))
        if tok.text == "-" and not _value_end(previous):
            roles.append("unary")
        elif tok.text == "=" and depth > 0:
            roles.append("keyword")  # `stride=2`, `c=64` in a block's parameters: no spaces, as in Python
        elif tok.text in BINARY or tok.text == "-" or _is_repeat_or_shape_x(previous, tok, following):
            roles.append("op")
        else:
            roles.append("")
        if tok.text == "{":
            braces.append(_is_template(segment[max(0, i - 2):i]))
            templates.append(braces[-1])
        elif tok.text == "}":
            templates.append(braces.pop() if braces else False)
        else:
            templates.append(False)
    out: list[str] = []
    for i, tok in enumerate(segment):
        if i and _space_between(segment[i - 1], roles[i - 1], templates[i - 1], tok, roles[i], templates[i]):
            out.append(" ")
        out.append(tok.text)
    return "".join(out)


def _space_between(a: Tok, role_a: str, template_a: bool, b: Tok, role_b: str, template_b: bool) -> bool:
    if b.text in (",", ")", "]", ":") or a.text in ("(", "[") or role_a in ("unary", "keyword"):
        return False
    if role_b == "keyword":
        return False
    if b.text in ("{", "}") or a.text == "{":
        return not (template_b if b.text in ("{", "}") else template_a)
    if role_a == "op" or role_b == "op" or a.text in (",", ":"):
        return True
    if b.text in ("(", "["):
        return a.kind != "name" or a.text in KEYWORDS or a.text == "x" and role_a == "op"
    return True


def _arrow_pieces(segment: list[Tok]) -> list[list[Tok]]:
    """A segment cut before each `->` outside brackets."""
    pieces: list[list[Tok]] = [[]]
    depth = 0
    for tok in segment:
        if tok.text == "->" and depth == 0 and pieces[-1]:
            pieces.append([])
        pieces[-1].append(tok)
        depth += (tok.text in "([") - (tok.text in ")]")
    return pieces


Line = tuple[str, str | None, int]  # code (indented), its trailing comment, the statement it belongs to


def _fitted(segment: list[Tok], first: str, rest: str, comment: str | None, group: int) -> list[Line]:
    """The segment as one line indented `first`, or as several broken before `->` where one would pass
    WIDTH, the later ones indented `rest`; the trailing comment goes with the last."""
    line = spaced(segment)
    if len(first) + len(line) + (len(comment) + 2 if comment else 0) <= WIDTH:
        return [(first + line, comment, group)]
    lines: list[str] = []
    for piece in _arrow_pieces(segment):
        text = spaced(piece)
        if lines and len(lines[-1]) + 1 + len(text) <= WIDTH:
            lines[-1] += " " + text
        else:
            lines.append((rest if lines else first) + text)
    return [(text, None, group) for text in lines[:-1]] + [(lines[-1], comment, group)]


def _alignment_groups(lines: list[Line]) -> list[list[Line]]:
    """Lines whose trailing comments share a column: a statement's lines, and a run of one-line statements
    that each have one."""
    statements: list[list[Line]] = []
    for line in lines:
        if statements and line[2] >= 0 and line[2] == statements[-1][-1][2]:
            statements[-1].append(line)
        else:
            statements.append([line])
    groups: list[list[Line]] = []
    run = False  # the last group is a run of commented one-line statements
    for statement in statements:
        single = len(statement) == 1 and statement[0][1] is not None and statement[0][2] >= 0
        if single and run:
            groups[-1] += statement
        else:
            groups.append(statement)
        run = single
    return groups


def _aligned(lines: list[Line]) -> list[str]:
    """Trailing comments of a group start in one column: two spaces after its longest line of code (or of
    commented code, where that column would pass WIDTH)."""
    out: list[str] = []
    for group in _alignment_groups(lines):
        commented = [(code, comment) for code, comment, _ in group if comment is not None]
        if not commented:
            out += [code for code, _, _ in group]
            continue
        column = max(len(code) for code, _, _ in group) + 2
        if column + max(len(comment) for _, comment in commented) > WIDTH:
            column = max(len(code) for code, _ in commented) + 2
        out += [(code.ljust(column) + comment) if comment is not None and code else (comment or code)
                for code, comment, _ in group]
    return out


def render(items: list[Item], original: str) -> str:
    source_lines = original.splitlines()
    out: list[Line] = []
    for position, (kind, depth, payload) in enumerate(items):
        group = position if kind == "statement" else -1  # comments and blank lines align with nothing
        if kind == "blank":
            after_open = out and out[-1][0].endswith("{")
            before_close = _next_statement_closes(items, position)
            if out and out[-1][:2] != ("", None) and not after_open and not before_close:
                out.append(("", None, -1))
            continue
        indent = INDENT * depth
        if kind == "comment":
            out.append((indent + payload, None, -1))
            continue
        statement: Statement = payload
        if statement.verbatim:
            written = source_lines[statement.first_line - 1:statement.last_line]
            out.append((indent + written[0].strip(), None, -1))
            out += [((indent + INDENT + line.strip()) if line.strip() else "", None, -1) for line in written[1:]]
            continue
        for number, segment in enumerate(statement.segments):
            out += [(indent + INDENT + text, None, group) for text in statement.comments_before.get(number, [])]
            out += _fitted(segment, indent if number == 0 else indent + INDENT, indent + INDENT,
                           statement.trailing.get(number), group)
    while out and out[-1][:2] == ("", None):
        out.pop()
    return "\n".join(_aligned(out)) + "\n" if out else ""


def _next_statement_closes(items: list[Item], position: int) -> bool:
    for kind, _, payload in items[position + 1:]:
        if kind == "statement":
            return bool(payload.segments[0]) and payload.segments[0][0].text == "}"
        if kind == "comment":
            return False
    return True
