"""Commands that read specs and report on them: check, diff, draw, sizes; schema and explain."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from .common import (
    STDIN,
    color_option,
    convention_option,
    debug_option,
    fail_usage,
    import_dirs,
    input_option,
    limits_for,
    load_spec,
    names,
    parse_constant,
    parse_input_override,
    print_diagnostics,
    reported_errors,
    spec_options,
    stdin_text,
    usage_message,
    use_color_on,
    worst_exit,
)

SEVERITIES = ["info", "warning", "error"]  # least severe first


@dataclass(frozen=True)
class ReportView:
    """What `check` shows of a report: the depth of its table, the by-op breakdown, the least severe
    diagnostic shown, the taps, the columns, the training-memory estimate."""

    depth: int | None = None
    by_op: bool = False
    min_severity: str = "info"
    taps: list[str] = field(default_factory=list)
    columns: tuple[str, ...] | None = None  # None: the usual ones
    train: str | None = None  # the optimizer of the training-memory estimate

    def shows(self, severity: str) -> bool:
        """Whether a diagnostic of this severity (`info`, `warning`, `error`) is shown."""
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)


@click.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              help="Report format (default: text).")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@convention_option
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batch size: scales MACs and activation memory.")
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="Show block instances this many levels deep as one row each (params and MACs summed), as "
                   "torchinfo's depth=: --depth 1 gives ResNet's stages.")
@click.option("--by-op", "by_op", is_flag=True, help="Add MACs and parameters by op kind (as fvcore's breakdown).")
@click.option("--train", type=click.Choice(["sgd", "adam"]), default=None,
              help="Add the memory of one training step with this optimizer (sgd: with momentum): weights, "
                   "gradients, optimizer state, activations kept for backward.")
@click.option("--columns", default=None, metavar="NAME,...",
              help="The table's columns: `+window` adds kernel, stride, dilation, padding and groups to the usual "
                   "ones; or name them: name, op, shape, params, macs, rf, rf_stride, rf_padding, kernel, stride, "
                   "dilation, padding, groups.")
@click.option("--min-severity", "min_severity", type=click.Choice(SEVERITIES), default="info",
              show_default=True, help="Leave out diagnostics below this severity.")
@click.option("-q", "--quiet", is_flag=True, help="Same as --min-severity warning: no notes (I1xx).")
@click.option("--taps", default=None, metavar="NAME,...",
              help="Also report these layers' or block instances' tensors (shape, channels, stride, receptive "
                   "field): what `compile --outputs` would return, e.g. --taps layer2,layer3,layer4.")
@input_option
@spec_options
@color_option
@debug_option
def check(specs: tuple[Path, ...], fmt: str, as_json: bool, convention: str, batch: int, depth: int | None,
          by_op: bool, train: str | None, columns: str | None, min_severity: str, quiet: bool, taps: str | None,
          inputs: tuple[str, ...], constants: tuple[str, ...], import_path: tuple[Path, ...], max_layers: int | None,
          color: bool | None, debug: bool) -> None:
    """Check each SPEC (`-`: standard input) and print its per-layer report and every diagnostic. With
    several, a report each (with --json, a list) and the worst exit code."""
    view = ReportView(depth, by_op, "warning" if quiet and min_severity == "info" else min_severity,
                      names(taps, "--taps"), _columns(columns), train)
    fmt = "json" if as_json else fmt
    reports: list[str] | None = [] if fmt == "json" and len(specs) > 1 else None
    worst = 0
    for index, spec in enumerate(specs):
        if index and fmt != "json":
            click.echo()
        try:
            _check(spec, fmt, convention, batch, view, inputs, constants, import_path, max_layers, color, debug,
                   reports)
        except SystemExit as exc:
            worst = max(worst, worst_exit(exc.code))
    if reports is not None:
        click.echo("[\n" + ",\n".join(reports) + "\n]")
    if worst:
        sys.exit(worst)


def _columns(option: str | None) -> tuple[str, ...] | None:
    """--columns: `+window` (the usual columns and the window's), or the columns named, in order."""
    from ..report.text import COLUMN_NAMES, WINDOW_COLUMNS

    if option is None:
        return None
    if option == "+window":
        return ("name", "op", "shape", *WINDOW_COLUMNS, "params", "macs", "rf", "rf_stride", "rf_padding")
    listed = names(option, "--columns")
    unknown = [name for name in listed if name not in COLUMN_NAMES]
    if unknown:
        raise click.BadParameter(f"unknown column(s) {', '.join(unknown)}; choose from {', '.join(COLUMN_NAMES)} "
                                 "or +window", param_hint="--columns")
    return tuple(listed)


def _check(spec: Path, fmt: str, convention: str, batch: int, view: ReportView, inputs: tuple[str, ...],
           constants: tuple[str, ...], import_path: tuple[Path, ...], max_layers: int | None, color: bool | None,
           debug: bool,
           reports: list[str] | None = None) -> None:
    """Check one spec and print its report; with `reports`, its JSON goes there (several specs: one list)."""
    from ..api import failure_report
    from ..diagnostics import SpecError, UsageError
    from ..report.diagnostics import printable, render_diagnostics
    from ..report.text import render_markdown, render_text

    try:
        network = load_spec(spec, inputs, import_path, max_layers, constants)
    except click.ClickException:
        raise
    except (UsageError, SpecError) as exc:
        unreadable = isinstance(exc, UsageError)
        if fmt == "json" and not (isinstance(exc, UsageError) and exc.diagnostic is None):  # null totals
            _json_out(failure_report(spec.stem, exc, convention, batch).model_dump_json(indent=2), reports)
            sys.exit(2 if unreadable else 1)
        if isinstance(exc, UsageError):
            fail_usage(usage_message(exc))
        print_diagnostics(exc.diagnostics, color)
        sys.exit(1)
    except Exception:
        if debug:
            raise
        fail_usage("internal error while checking the spec (a bug in cnndsl); rerun with --debug for the "
                   "traceback and report it")
    if network.is_library and fmt != "json":  # a block library (I103): nothing to tabulate
        use_color = use_color_on(color, sys.stdout)
        shown = [d for d in network.diagnostics if view.shows(d.severity.value)] or network.diagnostics
        click.echo(f"{printable(network.name)}: a block library, no network\n\n"
                   + render_diagnostics(shown, use_color), color=use_color)
        return
    try:
        report = network.report(convention, batch, view.taps, view.depth, view.train)
    except UsageError as exc:
        fail_usage(f"--taps: {exc}")  # a tap names no layer: the one option of a report that can
    report = report.model_copy(update={"diagnostics": [e for e in report.diagnostics if view.shows(e.severity)]})
    if fmt == "json":
        _json_out(report.model_dump_json(indent=2), reports)
    elif fmt == "markdown":
        click.echo(render_markdown(report), nl=False)
    else:
        use_color = use_color_on(color, sys.stdout)
        click.echo(render_text(report, color=use_color, by_op=view.by_op, columns=view.columns), nl=False,
                   color=use_color)


def _json_out(text: str, reports: list[str] | None) -> None:
    """A report's JSON: printed, or kept for the list of several specs."""
    if reports is None:
        click.echo(text)
    else:
        reports.append(text)


@click.command()
@click.argument("before", type=click.Path(path_type=Path))
@click.argument("after", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@convention_option
@input_option
@spec_options
@color_option
@debug_option
def diff(before: Path, after: Path, as_json: bool, convention: str, inputs: tuple[str, ...],
         constants: tuple[str, ...], import_path: tuple[Path, ...], max_layers: int | None, color: bool | None,
         debug: bool) -> None:
    """Compare two specs layer by layer: what AFTER adds, removes and changes against BEFORE (shapes,
    parameters, MACs, receptive fields), and the totals' deltas. Layers match by name."""
    with reported_errors(color, debug, "comparing"):
        from ..report.diff import diff_reports, render_diff

        old, new = (load_spec(spec, inputs, import_path, max_layers, constants) for spec in (before, after))
        result = diff_reports(old.report(convention), old.graph, new.report(convention), new.graph)
    click.echo(result.model_dump_json(indent=2) if as_json else render_diff(result), nl=as_json)


@click.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="The picture: .svg (default: SPEC's name), .png, .pdf, or .dot (Graphviz's text, no Graphviz "
                   "needed).")
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="Draw block instances this many levels deep as one node each (default: every layer, blocks as "
                   "nested boxes).")
@input_option
@spec_options
@color_option
@debug_option
def draw(spec: Path, output: Path | None, depth: int | None, inputs: tuple[str, ...], constants: tuple[str, ...],
         import_path: tuple[Path, ...], max_layers: int | None, color: bool | None, debug: bool) -> None:
    """Draw SPEC as a graph: a node per layer (op, shape, params, receptive field, coloured by MACs), block
    instances as boxes, edges labelled with shapes."""
    with reported_errors(color, debug, "drawing"):
        from ..report.draw import render, to_dot

        network = load_spec(spec, inputs, import_path, max_layers, constants)
        output = output or Path(f"{Path(str(spec)).stem if str(spec) != '-' else 'network'}.svg")
        render(to_dot(network.graph, network.report(depth=depth)), output)
    click.echo(f"wrote {output}")


@click.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--axis", "axes", default=None, metavar="AXES",
              help="Spatial axes to size: H, W, L, D, or several together (HW). Default: all of them together "
                   "(square inputs); the others keep their declared size.")
@click.option("--range", "size_range", default="32:2048", show_default=True, metavar="LOW:HIGH",
              help="The sizes to sweep, both ends included.")
@click.option("--at", "at", multiple=True, type=click.IntRange(min=1), metavar="SIZE",
              help="Also judge this size, naming the first rule it breaks (repeatable); exit 1 if one does not fit.")
@click.option("--of", "of", default=None, metavar="INPUT", help="The input to size (default: the first).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@input_option
@spec_options
@color_option
@debug_option
def sizes(spec: Path, axes: str | None, size_range: str, at: tuple[int, ...], of: str | None, as_json: bool,
          inputs: tuple[str, ...], constants: tuple[str, ...],
          import_path: tuple[Path, ...], max_layers: int | None, color: bool | None,
          debug: bool) -> None:
    """The input sizes SPEC accepts exactly: no window drops input (W100), every merge and crop lines up,
    every output is non-empty; as a closed form (U-Net: 188 + 16k) where there is one. Also the aligned
    sizes, where every strided layer's output times its stride is its input (ResNet-18: multiples of 32)."""
    with reported_errors(color, debug, "sweeping input sizes"):
        from ..api import size_sweeps
        from ..report.sizes import render_text, to_json

        low, high = _size_range(size_range)
        limits = limits_for(max_layers)
        text, path = (stdin_text(limits), Path(STDIN)) if str(spec) == "-" else (None, spec)
        overrides = dict(parse_input_override(item) for item in inputs)
        values = dict(parse_constant(item) for item in constants)
        sweeps = size_sweeps(path, low, high, axes, of, overrides, limits, import_dirs(import_path), text, at,
                             constants=values)
        name = Path(str(spec)).stem if text is None else "network"
        if as_json:
            click.echo(json.dumps({"network": name, "sweeps": [to_json(name, s) for s in sweeps]}, indent=1))
        else:
            click.echo("\n\n".join(render_text(name, s) for s in sweeps))
    if any(not verdict.fits for s in sweeps for verdict in s.at):
        sys.exit(1)


def _size_range(text: str) -> tuple[int, int]:
    from ..diagnostics import UsageError

    low, colon, high = text.partition(":")
    try:
        if not colon:
            raise ValueError
        return int(low), int(high)
    except ValueError:
        raise UsageError(f"--range takes LOW:HIGH, two sizes, e.g. 32:2048; got {text!r}") from None


@click.command()
def schema() -> None:
    """Print the JSON Schema of `check --json` (docs/report.schema.json)."""
    from ..report.model import Report

    click.echo(json.dumps(Report.model_json_schema(), indent=2))


@click.command()
@click.argument("code", required=False)
def explain(code: str | None) -> None:
    """Explain a diagnostic code, e.g. `cnndsl explain W100`; without one, list every code."""
    from ..diagnostics import Code, did_you_mean

    if code is None:
        for entry in Code:
            click.echo(f"{entry}  {entry.severity.value:<7}  {entry.meaning}")
        return
    info = Code.__members__.get(code.upper())
    if info is None:
        hint = did_you_mean(code.upper(), list(Code.__members__))
        fail_usage(f"unknown diagnostic code {code!r}{'; ' + hint if hint else ''}; `cnndsl explain` lists them "
                   "(docs/diagnostics.md)")
    click.echo(f"{info} ({info.severity.value}, {info.category.value}): {info.meaning}\nexample: {info.example}\n"
               f"fix: {info.fix}")
