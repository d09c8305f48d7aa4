"""Reading spec files: every way a path can fail to be a spec gets its own clear message."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..diagnostics import Diagnostic, Location, UsageError


@dataclass(frozen=True)
class SourceFile:
    path: str  # as shown in diagnostics
    text: str

    @cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""


def read_source(path: Path, shown_as: str | None = None) -> SourceFile:
    """Read a spec file, or raise UsageError (missing, a directory, binary or not UTF-8)."""
    shown = shown_as or str(path)

    def fail(what: str) -> UsageError:
        diagnostic = Diagnostic("E001", what, Location(shown, 1, 1))
        return UsageError(f"{shown}: error[E001]: {what}", diagnostic)

    if not path.exists():
        raise fail("no such file")
    if path.is_dir():
        raise fail("is a directory, not a .cnn spec file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror}") from exc
    if b"\x00" in data[:8192]:
        raise fail("is a binary file, not a .cnn spec (text, UTF-8)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"is not UTF-8 text (invalid byte at offset {exc.start})") from exc
    return SourceFile(shown, text.removeprefix("\ufeff"))


# Parsed files, by resolved path, so that a program importing the same file twice (and every
# diagnostic that quotes a source line) reads it once.
SOURCES: dict[str, SourceFile] = {}


def register(source: SourceFile) -> None:
    SOURCES[source.path] = source


def source_line(location: Location) -> str:
    source = SOURCES.get(location.file)
    return source.line(location.line) if source else ""
