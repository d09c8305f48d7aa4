"""The `cnndsl` command: formatting and exit codes over the Python API (0 clean, 1 spec errors,
2 usage or environment errors). A traceback only with --debug."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from .analysis.macs import CONVENTIONS

_SHAPE = re.compile(r"^\s*(\d+)(\s*x\s*\d+)*\s*$")


def parse_input_override(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, shape = text.partition("=")
    if not sep or not name.strip() or not _SHAPE.match(shape):
        raise click.BadParameter(f"expected NAME=CxHxW (e.g. x=3x512x512); got {text!r}", param_hint="--input")
    dims = tuple(int(d) for d in shape.replace(" ", "").split("x"))
    if any(d <= 0 for d in dims):
        raise click.BadParameter(f"dimensions must be positive; got {text!r}", param_hint="--input")
    return name.strip(), dims


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cnndsl")
def main() -> None:
    """cnndsl: write a CNN as a .cnn file; check shapes, costs and receptive fields before any tensor exists."""


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              help="Report format (default: text).")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--convention", type=click.Choice(CONVENTIONS), default="torchvision", show_default=True,
              help="How MACs are counted (torchvision: conv+linear weights; torchinfo: Mult-Adds; darknet: convs).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batch size: scales MACs and activation memory.")
@click.option("--input", "inputs", multiple=True, metavar="NAME=CxHxW",
              help="Override a declared input shape, e.g. --input x=3x512x512 (repeatable).")
@click.option("--color/--no-color", default=None, help="Colour diagnostics (default: on a terminal, unless NO_COLOR).")
@click.option("--debug", is_flag=True, help="Show Python tracebacks of internal errors.")
def check(spec: Path, fmt: str, as_json: bool, convention: str, batch: int, inputs: tuple[str, ...],
          color: bool | None, debug: bool) -> None:
    """Check SPEC and print its per-layer report and every diagnostic."""
    import gc

    # A short-lived process whose objects all live to the end: the cyclic collector would only rescan
    # them (a third of the run on a 10,000-layer spec).
    gc.disable()
    from .api import load
    from .diagnostics import SpecError, UsageError
    from .report.build import build_report
    from .report.diagnostics import render_diagnostics
    from .report.text import render_markdown, render_text

    fmt = "json" if as_json else fmt
    overrides = dict(parse_input_override(text) for text in inputs)
    try:
        network = load(spec, overrides)
    except UsageError as exc:
        _fail_usage(str(exc), debug)
    except SpecError as exc:
        if fmt == "json":
            from .graph.model import Graph

            report = build_report(Graph(spec.stem), exc.diagnostics)
            click.echo(report.model_dump_json(indent=2))
        else:
            use_color = _color(color, sys.stderr)
            click.echo(render_diagnostics(exc.diagnostics, use_color), err=True, color=use_color)
        sys.exit(1)
    except Exception:
        if debug:
            raise
        _fail_usage("internal error while checking the spec (a bug in cnndsl); rerun with --debug for the "
                    "traceback and report it", debug)
    report = network.report(convention, batch)
    if fmt == "json":
        click.echo(report.model_dump_json(indent=2))
        return
    peak = network.peak_activation_bytes(batch)
    if fmt == "markdown":
        click.echo(render_markdown(report, network.diagnostics, convention, batch, peak), nl=False)
        return
    use_color = _color(color, sys.stdout)
    click.echo(render_text(report, network.diagnostics, convention, batch, peak, color=use_color), nl=False,
               color=use_color)


_FORMATS = {"pt2": "torch.export program", "onnx": "ONNX model"}


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--to", "backend", type=click.Choice(["torch"]), default="torch", show_default=True,
              help="Backend to compile with.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Artifact to write (default: SPEC's name with the format's suffix, here).")
@click.option("--format", "fmt", type=click.Choice(sorted(_FORMATS)), default=None,
              help="pt2: torch.export ExportedProgram; onnx: ONNX (opset 18). Default: from -o's suffix, else pt2.")
@click.option("--dynamic-batch", is_flag=True, help="Make the batch axis dynamic in the artifact.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="The batch the artifact is specialised to (without --dynamic-batch).")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Load this state_dict (torch.save) instead of initialising the parameters.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the default initialisation.")
@click.option("--input", "inputs", multiple=True, metavar="NAME=CxHxW",
              help="Override a declared input shape, e.g. --input x=3x512x512 (repeatable).")
@click.option("--color/--no-color", default=None, help="Colour diagnostics (default: on a terminal, unless NO_COLOR).")
@click.option("--debug", is_flag=True, help="Show Python tracebacks of internal errors.")
def compile(spec: Path, backend: str, output: Path | None, fmt: str | None, dynamic_batch: bool, batch: int,
            weights: Path | None, seed: int, inputs: tuple[str, ...], color: bool | None, debug: bool) -> None:
    """Compile SPEC to a deployable artifact (checking it first; errors stop before any lowering)."""
    import time

    from .api import load
    from .diagnostics import SpecError, UsageError
    from .report.diagnostics import render_diagnostics

    fmt = _artifact_format(fmt, output)
    output = output or Path(f"{spec.stem}.{fmt}")
    overrides = dict(parse_input_override(text) for text in inputs)
    start = time.perf_counter()
    try:
        network = load(spec, overrides)
        module = network.to_torch(seed=seed, weights=weights)
        from .backends.torch.export import save_onnx, save_program

        output.parent.mkdir(parents=True, exist_ok=True)
        save = save_onnx if fmt == "onnx" else save_program
        save(module, network.graph, output, batch=batch, dynamic_batch=dynamic_batch)
    except UsageError as exc:
        _fail_usage(str(exc), debug)
    except SpecError as exc:
        use_color = _color(color, sys.stderr)
        click.echo(render_diagnostics(exc.diagnostics, use_color), err=True, color=use_color)
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        _fail_usage(f"compiling failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}\n"
                    "this is a bug in cnndsl or the backend; rerun with --debug for the traceback and report it",
                    debug)
    params = sum(p.numel() for p in module.parameters())
    batch_axis = "N" if dynamic_batch else str(batch)
    shapes = ", ".join(f"{name}: {' x '.join(map(str, (batch_axis, *(network.graph.node(node).shape or ()))))}"
                       for name, node in network.graph.inputs.items())
    click.echo(f"wrote {output} ({_FORMATS[fmt]}, {params:,} parameters, {shapes}) "
               f"in {time.perf_counter() - start:.1f} s")


def _artifact_format(fmt: str | None, output: Path | None) -> str:
    suffix = output.suffix.lstrip(".") if output else ""
    if fmt is None:
        return suffix if suffix in _FORMATS else "pt2"
    if suffix in _FORMATS and suffix != fmt:
        raise click.BadParameter(f"--format {fmt} but the output {output} ends in .{suffix}", param_hint="--format")
    return fmt


@main.command()
def schema() -> None:
    """Print the JSON Schema of `check --json` (docs/report.schema.json)."""
    from .report.model import Report

    click.echo(json.dumps(Report.model_json_schema(), indent=2))


@main.command()
@click.argument("code")
def explain(code: str) -> None:
    """Explain a diagnostic code, e.g. `cnndsl explain W100`."""
    from .diagnostics import CODES

    info = CODES.get(code.upper())
    if info is None:
        _fail_usage(f"unknown diagnostic code {code!r}; see docs/diagnostics.md", False)
    assert info is not None
    click.echo(f"{code.upper()} ({info.severity.value}): {info.title}\nexample: {info.example}")


def _color(option: bool | None, stream: object) -> bool:
    """--color/--no-color, else colour when writing to a terminal (and NO_COLOR is unset)."""
    import os

    if option is not None:
        return option
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


def _fail_usage(message: str, debug: bool) -> None:
    click.echo(f"error: {message}" if not message.split(":")[0].endswith(".cnn") else message, err=True)
    sys.exit(2)


def run() -> None:
    """The console script. Like mypy, it flushes its output and leaves with os._exit: freeing a large
    graph object by object at interpreter exit took 0.3 s of a 2.5 s run, and a closed pipe
    (`cnndsl check ... | head`) ends quietly instead of with a BrokenPipeError."""
    import os

    try:
        main.main(prog_name="cnndsl")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            click.echo(exc.code, err=True)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)


if __name__ == "__main__":
    run()
