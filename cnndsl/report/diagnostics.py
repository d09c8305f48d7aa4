"""Diagnostics as text: `file:line:col: severity[CODE]: message`, the source line, a caret, notes
and a hint (the format of docs/diagnostics.md)."""

from __future__ import annotations

from ..diagnostics import Diagnostic
from ..syntax.source import source_line

_COLORS = {"error": "red", "warning": "yellow", "info": "cyan"}


def render_diagnostic(d: Diagnostic, color: bool = False) -> str:
    headline = d.headline()
    if color:
        import click

        headline = click.style(headline, fg=_COLORS[d.severity.value], bold=d.is_error)
    lines = [headline]
    loc = d.location
    text = source_line(loc) if loc else ""
    if loc and text:
        gutter = str(loc.line)
        width = 1
        if loc.end_line == loc.line and loc.end_col and loc.end_col > loc.col:
            width = loc.end_col - loc.col
        lines.append(f" {gutter} | {text.rstrip()}")
        lines.append(f" {' ' * len(gutter)} | {' ' * (loc.col - 1)}{'^' * width}")
    lines.extend(f"  = note: {note}" for note in d.notes)
    if d.hint:
        lines.append(f"  hint: {d.hint}")
    return "\n".join(lines)


def render_diagnostics(diagnostics: list[Diagnostic], color: bool = False) -> str:
    blocks = [render_diagnostic(d, color) for d in diagnostics]
    counts = {s: sum(1 for d in diagnostics if d.severity.value == s) for s in ("error", "warning", "info")}
    summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n)
    return "\n\n".join(blocks) + (f"\n\n{summary}" if summary else "")
