"""Files cnndsl reads and writes besides specs.

Inputs (weights, arrays, Darknet files) must be regular files: a FIFO or a terminal would make a read
wait forever, a device (`/dev/zero`) would never end. Outputs are written beside their destination under
a temporary name and renamed into place when complete, so an interrupted or failed write (Ctrl-C, a full
disk, a crash in an exporter) never leaves a half-written file or a mixed artifact directory where a
good one was; and only regular files and directories are ever replaced (`-o /dev/full` is refused, not
written through). Every failure is a UsageError naming the path and the reason.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .diagnostics import UsageError


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages: `a FIFO`, `a device`, ..."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _stat(path: Path, what: str) -> os.stat_result | None:
    """The file's status, None when it does not exist; UsageError for a path that cannot be used at all."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise UsageError(f"{what} {path!s:.200}: the path contains a NUL byte") from exc
    except OSError as exc:
        raise UsageError(f"{what} {path!s:.200}: {exc.strerror}") from exc


def readable_file(path: Path, what: str) -> Path:
    """`path`, checked to be an existing regular file (UsageError otherwise)."""
    status = _stat(path, what)
    if status is None:
        raise UsageError(f"{what} {path}: no such file")
    if not stat.S_ISREG(status.st_mode):
        raise UsageError(f"{what} {path} is {file_kind(status.st_mode)}; cnndsl reads regular files only")
    return path


def _target(path: Path, what: str) -> None:
    status = _stat(path, what)
    if status is not None and not stat.S_ISREG(status.st_mode):
        hint = "; name a file inside it" if stat.S_ISDIR(status.st_mode) else ""
        raise UsageError(f"{what} {path} is {file_kind(status.st_mode)}; cnndsl writes regular files only{hint}")


def _make_parent(path: Path, what: str) -> Path:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: {exc.strerror} ({parent})") from exc
    return parent


@contextmanager
def atomic_file(path: Path, what: str) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` when the block ends normally,
    removed when it raises. OSError while writing becomes a UsageError."""
    _target(path, what)
    parent = _make_parent(path, what)
    try:
        # the suffix kept: exporters pick the format from it
        handle, name = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=f".partial{path.suffix}", dir=parent)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: {exc.strerror}") from exc
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_directory(path: Path, what: str, replaceable: Callable[[Path], bool]) -> Iterator[Path]:
    """A temporary directory beside `path` to fill; swapped in for `path` when the block ends normally.
    An existing `path` is replaced only when empty or `replaceable(path)` (a previous artifact): `-o`
    pointed at a source tree must not delete it."""
    check_directory_target(path, what, replaceable)
    parent = _make_parent(path, what)
    try:
        temporary = Path(tempfile.mkdtemp(prefix=f".{path.name[:100]}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: {exc.strerror}") from exc
    try:
        yield temporary
        _swap_in(temporary, path)
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def check_directory_target(path: Path, what: str, replaceable: Callable[[Path], bool]) -> None:
    """UsageError unless `atomic_directory(path, ...)` may write there: called before long work (a tuned
    compile) so that a bad -o fails in a second, not after it."""
    status = _stat(path, what)
    if status is None:
        return
    if not stat.S_ISDIR(status.st_mode):
        raise UsageError(f"{what} {path} is {file_kind(status.st_mode)}; it must be a directory (or not exist yet)")
    try:
        empty = not any(path.iterdir())
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror}") from exc
    if not empty and not replaceable(path):
        raise UsageError(f"{what} {path} exists and is not an artifact cnndsl wrote; remove it or choose another -o")


def _swap_in(new: Path, path: Path) -> None:
    """Replace directory `path` by `new`: two renames, so a reader sees the old or the new whole."""
    if not path.exists():
        os.rename(new, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name[:100]}.", suffix=".old", dir=path.parent))
    os.rename(path, old / "previous")
    os.rename(new, path)
    shutil.rmtree(old, ignore_errors=True)
