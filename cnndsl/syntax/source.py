"""Reading spec files: every way a path can fail to be a spec gets its own clear message.

Only regular files are read, at most `Limits.spec_bytes` of them: a device (`/dev/zero`), a FIFO or a
terminal (`/dev/stdin`) would otherwise be read until memory runs out, or forever.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..diagnostics import Code, Diagnostic, Location, UsageError
from ..files import file_kind
from ..limits import DEFAULT_LIMITS


@dataclass(frozen=True)
class SourceFile:
    path: str  # as shown in diagnostics
    text: str

    @cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""


_OPEN_ERRORS = {
    errno.ENOENT: "no such file",
    errno.ENOTDIR: "no such file (a part of the path is not a directory)",
    errno.EACCES: "permission denied",
    errno.ELOOP: "the path has a loop of symbolic links",
    errno.ENAMETOOLONG: "the path is too long for the file system",
}


def read_source(path: Path, shown_as: str | None = None, max_bytes: int = DEFAULT_LIMITS.spec_bytes) -> SourceFile:
    """Read a spec file, or raise UsageError (missing, not a regular file, too large, binary or not
    UTF-8)."""
    shown = shown_as or str(path)
    fail = _failure(shown)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the file type is checked on the open
        # descriptor, so the path cannot be swapped between the check and the read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except ValueError as exc:  # a NUL byte in the path
        raise fail("the path contains a NUL byte") from exc
    except OSError as exc:
        raise fail(_OPEN_ERRORS.get(exc.errno or 0, f"cannot be read: {exc.strerror}")) from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise fail("is a directory, not a .cnn spec file")
        if not stat.S_ISREG(mode):
            raise fail(f"is {file_kind(mode)}, not a .cnn spec file; specs are read from regular files only")
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return source_from_bytes(data, shown, max_bytes)


def source_from_bytes(data: bytes, shown: str, max_bytes: int = DEFAULT_LIMITS.spec_bytes) -> SourceFile:
    """A spec's text from its bytes (a file's, or `cnndsl.loads`' string), refused as `read_source` refuses
    a file: larger than the limit, binary, or not UTF-8."""
    fail = _failure(shown)
    if len(data) > max_bytes:
        raise fail(f"is larger than {max_bytes:,} bytes, the limit for a spec "
                   "(a spec is a description of layers: the largest published networks take a few kB)")
    if b"\x00" in data[:8192]:
        raise fail("is a binary file, not a .cnn spec (text, UTF-8)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"is not UTF-8 text (invalid byte at offset {exc.start})") from exc
    return SourceFile(shown, text.removeprefix("\ufeff"))


def _failure(shown: str) -> Callable[[str], UsageError]:
    def fail(what: str) -> UsageError:
        diagnostic = Diagnostic(Code.E001, what, Location(shown, 1, 1))
        return UsageError(f"{shown}: error[E001]: {what}", diagnostic)
    return fail
