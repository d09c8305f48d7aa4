"""Diagnostics as text: `file:line:col: severity[CODE]: message`, the source line, a caret, notes
and a hint (the format of docs/diagnostics.md).

Everything quoted from a spec or a path is printed through `printable`: a spec is untrusted text, and
escape sequences in it (clear screen, set the window title, OSC 8 links, a lone carriage return that
rewrites the line) must reach the terminal as visible escapes, not as commands.
"""

from __future__ import annotations

from ..diagnostics import Code, Diagnostic, Location
from ..limits import DEFAULT_LIMITS
from .model import DiagnosticEntry

_COLORS = {"error": "red", "warning": "yellow", "info": "cyan"}


def printable(text: str) -> str:
    """`text` with every control or format character (C0, DEL, C1, bidirectional overrides, ...) shown
    as a `\\x1b` / `\\u202e` escape, and tabs as spaces; other text unchanged."""
    if text.isprintable():
        return text
    return "".join(_printable_char(ch) for ch in text)


def _printable_char(ch: str) -> str:
    if ch.isprintable():
        return ch
    if ch == "\t":
        return " "
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def quoted_line(text: str, col: int, width: int, most: int = DEFAULT_LIMITS.quoted_line) -> tuple[str, int, int]:
    """The part of a source line to quote under a diagnostic: at most `most` characters around the
    span [col, col + width), escaped with `printable`; with where the caret starts and how wide it is in
    the quoted text."""
    text = text.rstrip()
    start = max(0, min(col - 1 - most // 3, len(text) - most))
    end = min(len(text), start + most)
    before = printable(text[start:col - 1])
    marked = printable(text[col - 1:col - 1 + width]) or " "
    shown = ("..." if start > 0 else "") + printable(text[start:end]) + ("..." if end < len(text) else "")
    caret = len(before) + (3 if start > 0 else 0)
    return shown, caret, max(1, min(len(marked), len(shown) - caret))


def render_diagnostic(d: Diagnostic, color: bool = False) -> str:
    headline = printable(d.headline())
    if color:
        import click

        headline = click.style(headline, fg=_COLORS[d.severity.value], bold=d.is_error)
    lines = [headline]
    loc = d.location
    text = d.excerpt
    if loc and text:
        gutter = str(loc.line)
        width = 1
        if loc.end_line == loc.line and loc.end_col and loc.end_col > loc.col:
            width = loc.end_col - loc.col
        shown, caret, width = quoted_line(text, loc.col, width)
        lines.append(f" {gutter} | {shown}")
        lines.append(f" {' ' * len(gutter)} | {' ' * caret}{'^' * width}")
    lines.extend(f"  = note: {printable(note)}" for note in d.notes)
    if d.hint:
        lines.append(f"  hint: {printable(d.hint)}")
    return "\n".join(lines)


def render_diagnostics(diagnostics: list[Diagnostic], color: bool = False) -> str:
    blocks = [render_diagnostic(d, color) for d in diagnostics]
    counts = {s: sum(1 for d in diagnostics if d.severity.value == s) for s in ("error", "warning", "info")}
    summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n)
    return "\n\n".join(blocks) + (f"\n\n{summary}" if summary else "")


def from_entry(entry: DiagnosticEntry) -> Diagnostic:
    """A report's diagnostic entry as the diagnostic it was made from, to render it."""
    location = Location(entry.file, entry.line, entry.col, entry.end_line or None, entry.end_col or None) \
        if entry.file else None
    return Diagnostic(Code[entry.code], entry.message, location, entry.hint, tuple(entry.notes), entry.source_line)
