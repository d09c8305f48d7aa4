"""What every command shares: the options declared once, reading a spec with the command line's
overrides, and turning errors into messages and exit codes (0 clean, 1 spec errors, 2 usage or
environment errors; a traceback only with --debug)."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..diagnostics import Option, UsageError
from ..limits import DEFAULT_LIMITS, Limits
from ..ops.base import Convention

if TYPE_CHECKING:
    from ..api import Network

STDIN = "<stdin>"  # how a spec read from standard input is shown
_SHAPE = re.compile(r"^\s*(\d{1,18})(\s*x\s*\d{1,18})*\s*$")


def parse_input_override(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, shape = text.partition("=")
    if not sep or not name.strip() or not _SHAPE.match(shape):
        raise click.BadParameter(f"expected NAME=CxHxW (e.g. x=3x512x512, sizes below 10^18); got {text[:80]!r}",
                                 param_hint="--input")
    dims = tuple(int(d) for d in shape.replace(" ", "").split("x"))
    if any(d <= 0 for d in dims):
        raise click.BadParameter(f"dimensions must be positive; got {text!r}", param_hint="--input")
    return name.strip(), dims


_NUMBER = re.compile(r"^-?\d{1,18}$|^-?(\d{1,18}\.\d*|\.\d+)([eE][-+]?\d{1,3})?$|^-?\d{1,18}[eE][-+]?\d{1,3}$")


def parse_constant(text: str) -> tuple[str, bool | int | float]:
    """--set NAME=VALUE: a number or true/false, as the language writes them."""
    name, sep, value = (part.strip() for part in text.partition("="))
    if not sep or not name.isidentifier() or not (value in ("true", "false") or _NUMBER.match(value)):
        raise click.BadParameter(f"expected NAME=VALUE with a number or true/false (e.g. aux_loss=false, "
                                 f"classes=10); got {text[:80]!r}", param_hint="--set")
    if value in ("true", "false"):
        return name, value == "true"
    return name, int(value) if re.fullmatch(r"-?\d+", value) else float(value)


# Options several commands share, declared once.
_shape_option = click.option("--input", "inputs", multiple=True, metavar="NAME=CxHxW",
                             help="Override a declared input shape, e.g. --input x=3x512x512 (repeatable).")
_set_option = click.option("--set", "constants", multiple=True, metavar="NAME=VALUE",
                           help="Replace a constant the spec declares at its top level, e.g. --set aux_loss=false "
                                "(a number or true/false, of the constant's kind; repeatable).")


def input_option(function: Any) -> Any:
    """--input and --set: the spec's input shapes and top-level constants, as this run wants them."""
    return _shape_option(_set_option(function))
color_option = click.option("--color/--no-color", default=None,
                            help="Colour diagnostics (default: on a terminal, unless NO_COLOR).")
debug_option = click.option("--debug", is_flag=True, help="Show Python tracebacks of internal errors.")
import_path_option = click.option("--import-path", "import_path", multiple=True, metavar="DIR",
                                  type=click.Path(path_type=Path, file_okay=False),
                                  help="Also allow imports from DIR (repeatable; also $CNNDSL_PATH, separated by "
                                       "':'). By default a spec imports only from its own directory tree.")
max_layers_option = click.option("--max-layers", type=click.IntRange(min=1), default=None, metavar="N",
                                 help="Stop with E210 past N layers after expansion (default 10,000).")
convention_option = click.option(
    "--convention", type=click.Choice([c.value for c in Convention]), default="torchvision", show_default=True,
    help="How MACs are counted (torchvision: conv+linear weights; torchinfo: Mult-Adds; darknet: convs).")
# TVM options shared by compile, tune and bench; the choices are the backend's, repeated here so that
# `--help` never imports TVM
layout_option = click.option("--layout", type=click.Choice(["auto", "nchw", "nhwc"]), default="auto",
                             show_default=True, help="tvm only: data layout of 2-D convolutions; auto: NHWC for "
                             "tuned CPU builds, NCHW otherwise (docs/benchmarks.md has the measurements).")
winograd_option = click.option("--winograd", type=click.Choice(["auto", "on", "off"]), default="auto",
                               show_default=True, help="tvm only: 3x3 stride-1 convolutions by Winograd F(4x4, 3x3); "
                               "auto: in tuned CPU builds (NHWC).")
trials_option = click.option("--trials", type=click.IntRange(min=1), default=2000, show_default=True,
                             help="tvm only: measurements in all, over the tasks not yet in the tuning database.")
trials_per_task_option = click.option("--trials-per-task", type=click.IntRange(min=1), default=None,
                                      help="tvm only: at most this many measurements for one task.")


# The flag of each setting a message below the command line refers to by meaning (diagnostics.Option).
FLAGS = {Option.INPUTS: "--input", Option.CONSTANTS: "--set", Option.DEPTH: "--depth", Option.BATCH: "--batch",
         Option.SIZE_RANGE: "--range", Option.AXES: "--axis", Option.TUNE_DB: "--tune-db",
         Option.CUDA_GRAPH: "--cuda-graph", Option.ROUNDS_DIRECTORY: "--rounds-via", Option.INGEST: "--ingest",
         Option.BUNDLE_LIMIT: "--bundle-limit", Option.RPC_TRACKER: "--rpc-tracker", Option.RPC_KEY: "--rpc-key"}


def usage_message(error: UsageError) -> str:
    """A usage error as the command line says it: the flag of the setting at fault first."""
    return f"{FLAGS[error.option]}: {error}" if error.option is not None else str(error)


def spec_options(function: Any) -> Any:
    """--import-path and --max-layers: how far a spec may reach, on every command that reads one."""
    return import_path_option(max_layers_option(function))


def load_spec(spec: Path, inputs: tuple[str, ...] = (), import_path: tuple[Path, ...] = (),
              max_layers: int | None = None, constants: tuple[str, ...] = ()) -> Network:
    """`cnndsl.load` with the command line's input overrides, constants, import path and limits; `-` reads
    the spec from standard input (shown as `<stdin>`, its imports resolved in the current directory)."""
    from ..api import load, loads

    overrides = dict(parse_input_override(text) for text in inputs)
    values = dict(parse_constant(text) for text in constants)
    limits = limits_for(max_layers)
    if str(spec) == "-":
        return loads(stdin_text(limits), STDIN, overrides, limits, import_dirs(import_path), constants=values)
    return load(spec, overrides, limits, import_dirs(import_path), constants=values)


def stdin_text(limits: Limits) -> str:
    """A spec from standard input: one byte over the size limit is enough to refuse it, and what is not
    UTF-8 is kept (surrogate-escaped) to be refused as it is in a file."""
    return sys.stdin.buffer.read(limits.spec_bytes + 1).decode("utf-8", errors="surrogateescape")


def limits_for(max_layers: int | None) -> Limits:
    return dataclasses.replace(DEFAULT_LIMITS, layers=max_layers) if max_layers else DEFAULT_LIMITS


def import_dirs(given: tuple[Path, ...]) -> list[Path]:
    """--import-path's directories, then $CNNDSL_PATH's."""
    return [*given, *(Path(p) for p in os.environ.get("CNNDSL_PATH", "").split(os.pathsep) if p)]


def names(option: str | None, flag: str) -> list[str]:
    """A comma-separated list of layer names (`--taps`, `--outputs`)."""
    if option is None:
        return []
    listed = [name.strip() for name in option.split(",")]
    if not all(listed):
        raise click.BadParameter(f"expected names separated by commas; got {option!r}", param_hint=flag)
    return listed


def worst_exit(code: object) -> int:
    """The exit code a SystemExit carries (a message or None: 1)."""
    return code if isinstance(code, int) else 1


@contextmanager
def own_warnings_as_lines() -> Iterator[None]:
    """cnndsl's own warnings print as one `warning: ...` line; other libraries' keep Python's format."""
    import warnings

    package_dir = str(Path(__file__).parent.parent)
    python_format = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        if filename.startswith(package_dir):
            click.echo(f"warning: {message}", err=True)
        else:
            python_format(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextmanager
def reported_errors(color: bool | None, debug: bool, doing: str) -> Iterator[None]:
    """Spec errors -> diagnostics and exit 1; usage errors -> exit 2; anything else is a bug: exit 2 with
    a one-line message (the traceback with --debug)."""
    from ..diagnostics import SpecError

    try:
        with own_warnings_as_lines():
            yield
    except UsageError as exc:
        fail_usage(usage_message(exc))
    except SpecError as exc:
        print_diagnostics(exc.diagnostics, color)
        sys.exit(1)
    except (click.ClickException, SystemExit, KeyboardInterrupt):
        raise
    except MemoryError:
        fail_usage(f"out of memory while {doing}; a smaller --batch or input size may fit")
    except ModuleNotFoundError as exc:
        from ..extras import MissingExtra, missing_message

        if debug:
            raise
        fail_usage(str(exc) if isinstance(exc, MissingExtra) else missing_message(doing, exc.name or "?"))
    except Exception as exc:
        if debug:
            raise
        if "can't allocate memory" in str(exc) or "not enough memory" in str(exc):  # PyTorch's allocator
            fail_usage(f"out of memory while {doing} ({str(exc).splitlines()[0][:160]}); a smaller --batch or "
                       "input size may fit")
        fail_usage(f"{doing} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}\n"
                   "this is a bug in cnndsl or the backend; rerun with --debug for the traceback and report it")


def print_diagnostics(diagnostics: list[Any], color: bool | None) -> None:
    """Diagnostics to standard error, coloured as --color says."""
    from ..report.diagnostics import render_diagnostics

    use_color = use_color_on(color, sys.stderr)
    click.echo(render_diagnostics(diagnostics, use_color), err=True, color=use_color)


def use_color_on(option: bool | None, stream: object) -> bool:
    """--color/--no-color, else colour when writing to a terminal (and NO_COLOR is unset)."""
    if option is not None:
        return option
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


def fail_usage(message: str) -> NoReturn:
    from ..report.diagnostics import printable

    message = "\n".join(printable(line) for line in message.splitlines())
    click.echo(f"error: {message}" if not message.split(":")[0].endswith(".cnn") else message, err=True)
    sys.exit(2)
