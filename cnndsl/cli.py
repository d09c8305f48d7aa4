"""The `cnndsl` command: formatting and exit codes over the Python API (0 clean, 1 spec errors,
2 usage or environment errors). A traceback only with --debug."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from .analysis.macs import CONVENTIONS
from .layout import fmt_shape

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


# Options several commands share, declared once.
input_option = click.option("--input", "inputs", multiple=True, metavar="NAME=CxHxW",
                            help="Override a declared input shape, e.g. --input x=3x512x512 (repeatable).")
color_option = click.option("--color/--no-color", default=None,
                            help="Colour diagnostics (default: on a terminal, unless NO_COLOR).")
debug_option = click.option("--debug", is_flag=True, help="Show Python tracebacks of internal errors.")
import_path_option = click.option("--import-path", "import_path", multiple=True, metavar="DIR",
                                  type=click.Path(path_type=Path, file_okay=False),
                                  help="Also allow imports from DIR (repeatable; also $CNNDSL_PATH, separated by "
                                       "':'). By default a spec imports only from its own directory tree.")
max_layers_option = click.option("--max-layers", type=click.IntRange(min=1), default=None, metavar="N",
                                 help="Stop with E210 past N layers after expansion (default 10,000).")


def _spec_options(function: Any) -> Any:
    """--import-path and --max-layers: how far a spec may reach, on every command that reads one."""
    return import_path_option(max_layers_option(function))


def _load(spec: Path, inputs: tuple[str, ...] = (), import_path: tuple[Path, ...] = (),
          max_layers: int | None = None) -> Any:
    """`cnndsl.load` with the command line's input overrides, import path and limits; `-` reads the spec
    from standard input (shown as `<stdin>`, its imports resolved in the current directory)."""
    from .api import load, loads

    overrides = dict(parse_input_override(text) for text in inputs)
    limits = _limits(max_layers)
    if str(spec) == "-":
        return loads(_stdin_text(limits), STDIN, overrides, limits, _import_path(import_path))
    return load(spec, overrides, limits, _import_path(import_path))


def _stdin_text(limits: Any) -> str:
    """A spec from standard input: one byte over the size limit is enough to refuse it, and what is not
    UTF-8 is kept (surrogate-escaped) to be refused as it is in a file."""
    return sys.stdin.buffer.read(limits.spec_bytes + 1).decode("utf-8", errors="surrogateescape")


def _limits(max_layers: int | None) -> Any:
    import dataclasses

    from .limits import DEFAULT_LIMITS

    return dataclasses.replace(DEFAULT_LIMITS, layers=max_layers) if max_layers else DEFAULT_LIMITS


def _import_path(given: tuple[Path, ...]) -> list[Path]:
    """--import-path's directories, then $CNNDSL_PATH's."""
    import os

    return [*given, *(Path(p) for p in os.environ.get("CNNDSL_PATH", "").split(os.pathsep) if p)]


STDIN = "<stdin>"  # how a spec read from standard input is shown
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cnndsl")
def main() -> None:
    """cnndsl: write a CNN as a .cnn file; check shapes, costs and receptive fields before any tensor exists."""


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              help="Report format (default: text).")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--convention", type=click.Choice(CONVENTIONS), default="torchvision", show_default=True,
              help="How MACs are counted (torchvision: conv+linear weights; torchinfo: Mult-Adds; darknet: convs).")
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
@click.option("--min-severity", "min_severity", type=click.Choice(["info", "warning", "error"]), default="info",
              show_default=True, help="Leave out diagnostics below this severity.")
@click.option("-q", "--quiet", is_flag=True, help="Same as --min-severity warning: no notes (I1xx).")
@click.option("--taps", default=None, metavar="NAME,...",
              help="Also report these layers' or block instances' tensors (shape, channels, stride, receptive "
                   "field): what `compile --outputs` would return, e.g. --taps layer2,layer3,layer4.")
@input_option
@_spec_options
@color_option
@debug_option
def check(specs: tuple[Path, ...], fmt: str, as_json: bool, convention: str, batch: int, depth: int | None,
          by_op: bool, train: str | None, columns: str | None, min_severity: str, quiet: bool, taps: str | None,
          inputs: tuple[str, ...], import_path: tuple[Path, ...], max_layers: int | None, color: bool | None,
          debug: bool) -> None:
    """Check each SPEC (`-`: standard input) and print its per-layer report and every diagnostic. With
    several, a report each (with --json, a list) and the worst exit code."""
    import gc

    # Every object of a check lives to its end: the cyclic collector would only rescan them (a third
    # of the run on a 10,000-layer spec). Paused for the command only: `main` also runs in-process
    # (tests, notebooks), where a collector left off would leak every cycle afterwards.
    collecting = gc.isenabled()
    gc.disable()
    try:
        view = ReportView(depth, by_op, "warning" if quiet and min_severity == "info" else min_severity,
                          _names(taps, "--taps"), _columns(columns), train)
        fmt = "json" if as_json else fmt
        reports: list[str] | None = [] if fmt == "json" and len(specs) > 1 else None
        worst = 0
        for index, spec in enumerate(specs):
            if index and fmt != "json":
                click.echo()
            try:
                _check(spec, fmt, convention, batch, view, inputs, import_path, max_layers, color, debug, reports)
            except SystemExit as exc:
                worst = max(worst, exc.code if isinstance(exc.code, int) else 1)
        if reports is not None:
            click.echo("[\n" + ",\n".join(reports) + "\n]")
        if worst:
            sys.exit(worst)
    finally:
        if collecting:
            gc.enable()


def _names(option: str | None, flag: str) -> list[str]:
    """A comma-separated list of layer names (`--taps`, `--outputs`)."""
    if option is None:
        return []
    names = [name.strip() for name in option.split(",")]
    if not all(names):
        raise click.BadParameter(f"expected names separated by commas; got {option!r}", param_hint=flag)
    return names


def _columns(option: str | None) -> tuple[str, ...] | None:
    """--columns: `+window` (the usual columns and the window's), or the columns named, in order."""
    from .report.text import COLUMN_NAMES, WINDOW_COLUMNS

    if option is None:
        return None
    if option == "+window":
        return ("name", "op", "shape", *WINDOW_COLUMNS, "params", "macs", "rf", "rf_stride", "rf_padding")
    names = _names(option, "--columns")
    unknown = [name for name in names if name not in COLUMN_NAMES]
    if unknown:
        raise click.BadParameter(f"unknown column(s) {', '.join(unknown)}; choose from {', '.join(COLUMN_NAMES)} "
                                 "or +window", param_hint="--columns")
    return tuple(names)


def _weights_map_rules(options: tuple[str, ...]) -> list[str]:
    """--weights-map values: rules, or @FILE of rules (one per line; blank lines and # comments skipped)."""
    from .diagnostics import UsageError
    from .files import readable_file

    rules: list[str] = []
    for option in options:
        if not option.startswith("@"):
            rules.append(option)
            continue
        path = Path(option[1:])
        readable_file(path, "weights map")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"weights map {path} cannot be read ({exc})") from exc
        rules += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return rules


@dataclass(frozen=True)
class ReportView:
    """What `check` shows of a report: the depth of its table, the by-op breakdown, the least severe
    diagnostic shown, the taps."""

    depth: int | None = None
    by_op: bool = False
    min_severity: str = "info"
    taps: list[str] = field(default_factory=list)
    columns: tuple[str, ...] | None = None  # None: the usual ones
    train: str | None = None  # the optimizer of the training-memory estimate

    def shows(self, severity: str) -> bool:
        """Whether a diagnostic of this severity (`info`, `warning`, `error`) is shown."""
        order = ["info", "warning", "error"]
        return order.index(severity) >= order.index(self.min_severity)


def _check(spec: Path, fmt: str, convention: str, batch: int, view: ReportView, inputs: tuple[str, ...],
           import_path: tuple[Path, ...], max_layers: int | None, color: bool | None, debug: bool,
           reports: list[str] | None = None) -> None:
    """Check one spec and print its report; with `reports`, its JSON goes there (several specs: one list)."""
    from .diagnostics import SpecError, UsageError
    from .report.assemble import build_report
    from .report.diagnostics import render_diagnostics
    from .report.text import render_markdown, render_text

    try:
        network = _load(spec, inputs, import_path, max_layers)
    except click.ClickException:
        raise
    except UsageError as exc:
        if fmt == "json" and exc.diagnostic is not None:  # a file that cannot be read: still JSON, exit 2
            from .graph.model import Graph

            _json_out(build_report(Graph(spec.stem), [exc.diagnostic], convention, batch).model_dump_json(indent=2),
                      reports)
            sys.exit(2)
        _fail_usage(str(exc), debug)
    except SpecError as exc:
        if fmt == "json":  # the layers that did check, every diagnostic, null totals
            from .graph.model import Graph

            report = build_report(exc.partial or Graph(spec.stem), exc.diagnostics, convention, batch)
            _json_out(report.model_dump_json(indent=2), reports)
        else:
            use_color = _color(color, sys.stderr)
            click.echo(render_diagnostics(exc.diagnostics, use_color), err=True, color=use_color)
        sys.exit(1)
    except Exception:
        if debug:
            raise
        _fail_usage("internal error while checking the spec (a bug in cnndsl); rerun with --debug for the "
                    "traceback and report it", debug)
    if not network.graph.inputs and fmt != "json":  # a block library (I103): nothing to tabulate
        from .report.diagnostics import printable

        use_color = _color(color, sys.stdout)
        click.echo(f"{printable(network.name)}: a block library, no network\n\n"
                   + render_diagnostics([d for d in network.diagnostics if view.shows(d.severity.value)]
                                        or network.diagnostics, use_color),
                   color=use_color)
        return
    try:
        report = network.report(convention, batch, view.taps, view.depth, view.train)
    except UsageError as exc:
        _fail_usage(f"--taps: {exc}", debug)
    diagnostics = [d for d in network.diagnostics if view.shows(d.severity.value)]
    report = report.model_copy(update={"diagnostics": [e for e in report.diagnostics if view.shows(e.severity)]})
    if fmt == "json":
        _json_out(report.model_dump_json(indent=2), reports)
        return
    if fmt == "markdown":
        click.echo(render_markdown(report, diagnostics), nl=False)
        return
    use_color = _color(color, sys.stdout)
    click.echo(render_text(report, diagnostics, color=use_color, by_op=view.by_op, columns=view.columns), nl=False,
               color=use_color)


@main.command()
@click.argument("before", type=click.Path(path_type=Path))
@click.argument("after", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.option("--convention", type=click.Choice(CONVENTIONS), default="torchvision", show_default=True,
              help="How MACs are counted.")
@input_option
@_spec_options
@color_option
@debug_option
def diff(before: Path, after: Path, as_json: bool, convention: str, inputs: tuple[str, ...],
         import_path: tuple[Path, ...], max_layers: int | None, color: bool | None, debug: bool) -> None:
    """Compare two specs layer by layer: what AFTER adds, removes and changes against BEFORE (shapes,
    parameters, MACs, receptive fields), and the totals' deltas. Layers match by name."""
    with _reported_errors(color, debug, "comparing"):
        from .report.diff import diff_reports, render_diff

        old, new = (_load(spec, inputs, import_path, max_layers) for spec in (before, after))
        result = diff_reports(old.report(convention), old.graph, new.report(convention), new.graph)
    click.echo(result.model_dump_json(indent=2) if as_json else render_diff(result), nl=as_json)


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="The picture: .svg (default: SPEC's name), .png, .pdf, or .dot (Graphviz's text, no Graphviz "
                   "needed).")
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="Draw block instances this many levels deep as one node each (default: every layer, blocks as "
                   "nested boxes).")
@input_option
@_spec_options
@color_option
@debug_option
def draw(spec: Path, output: Path | None, depth: int | None, inputs: tuple[str, ...], import_path: tuple[Path, ...],
         max_layers: int | None, color: bool | None, debug: bool) -> None:
    """Draw SPEC as a graph: a node per layer (op, shape, params, receptive field, coloured by MACs), block
    instances as boxes, edges labelled with shapes."""
    with _reported_errors(color, debug, "drawing"):
        from .report.draw import render, to_dot

        network = _load(spec, inputs, import_path, max_layers)
        output = output or Path(f"{Path(str(spec)).stem if str(spec) != '-' else 'network'}.svg")
        render(to_dot(network.graph, network.report(depth=depth)), output)
    click.echo(f"wrote {output}")


@main.command()
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
@_spec_options
@color_option
@debug_option
def sizes(spec: Path, axes: str | None, size_range: str, at: tuple[int, ...], of: str | None, as_json: bool,
          inputs: tuple[str, ...], import_path: tuple[Path, ...], max_layers: int | None, color: bool | None,
          debug: bool) -> None:
    """The input sizes SPEC accepts exactly: no window drops input (W100), every merge and crop lines up,
    every output is non-empty; as a closed form (U-Net: 188 + 16k) where there is one. Also the aligned
    sizes, where every strided layer's output times its stride is its input (ResNet-18: multiples of 32)."""
    import json

    with _reported_errors(color, debug, "sweeping input sizes"):
        from .api import size_sweeps
        from .report.sizes import render_text, to_json

        low, high = _size_range(size_range)
        text, path = (_stdin_text(_limits(max_layers)), Path(STDIN)) if str(spec) == "-" else (None, spec)
        overrides = dict(parse_input_override(item) for item in inputs)
        sweeps = size_sweeps(path, low, high, axes, of, overrides, _limits(max_layers), _import_path(import_path),
                             text, at)
        name = Path(str(spec)).stem if text is None else "network"
        if as_json:
            click.echo(json.dumps({"network": name, "sweeps": [to_json(name, s) for s in sweeps]}, indent=1))
        else:
            click.echo("\n\n".join(render_text(name, s) for s in sweeps))
    if any(not verdict.fits for s in sweeps for verdict in s.at):
        sys.exit(1)


@main.command("fmt")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file would change (for CI).")
@click.option("--diff", "show_diff", is_flag=True, help="Write nothing; print what would change, as a unified diff.")
@color_option
@debug_option
def fmt(files: tuple[Path, ...], check: bool, show_diff: bool, color: bool | None, debug: bool) -> None:
    """Rewrite .cnn FILES (a directory: every .cnn file under it) in the one layout, comments kept; `-`
    formats standard input to standard output. A file with errors is reported and left alone; the
    others are still formatted (exit 1 then, 2 for a file that cannot be read)."""
    worst, changed = 0, []
    for path in _cnn_files(files):
        try:
            with _reported_errors(color, debug, "formatting"):
                if _format_one(path, check, show_diff):
                    changed.append(str(path))
        except SystemExit as exc:  # this file's problem is reported; the other files are still formatted
            worst = max(worst, exc.code if isinstance(exc.code, int) else 1)
    if check and changed:
        click.echo("\n".join(f"would reformat {name}" for name in changed), err=True)
        worst = max(worst, 1)
    sys.exit(worst)


def _format_one(path: Path, check: bool, show_diff: bool) -> bool:
    """Format one file (or standard input, `-`); whether it changes."""
    import difflib

    from .diagnostics import UsageError
    from .files import atomic_file
    from .syntax.fmt import FormatError, format_text
    from .syntax.source import read_source, source_from_bytes

    limit = _limits(None).spec_bytes
    source = (source_from_bytes(sys.stdin.buffer.read(limit + 1), STDIN, limit) if str(path) == "-"
              else read_source(path, max_bytes=limit))
    try:
        formatted = format_text(source.text, source.path)
    except FormatError as exc:
        raise UsageError(f"{exc} (a bug in cnndsl fmt: please report it with the file)") from exc
    changed = formatted != source.text
    if str(path) == "-" and not (check or show_diff):  # a filter: standard input to standard output
        click.echo(formatted, nl=False)
        return changed
    if not changed:
        return False
    if show_diff:
        before, after = source.text.splitlines(keepends=True), formatted.splitlines(keepends=True)
        click.echo("".join(difflib.unified_diff(before, after, f"{source.path} (as written)",
                                                f"{source.path} (formatted)")), nl=False)
    elif not check:
        mode = path.stat().st_mode & 0o7777
        with atomic_file(path, "formatted file") as temporary:
            temporary.write_text(formatted, encoding="utf-8")
            temporary.chmod(mode)
        click.echo(f"formatted {source.path}", err=True)
    return True


def _cnn_files(given: tuple[Path, ...]) -> list[Path]:
    """The files named, a directory standing for the .cnn files under it (sorted)."""
    found: list[Path] = []
    for path in given:
        found += sorted(path.rglob("*.cnn")) if str(path) != "-" and path.is_dir() else [path]
    return found


@main.command("lsp")
@debug_option
def language_server(debug: bool) -> None:
    """Serve the language server protocol over stdin and stdout (editors start it: see editors/)."""
    from .extras import MissingExtra, require

    try:
        require("the language server", "pygls", "lsprotocol")
    except MissingExtra as exc:
        _fail_usage(str(exc), debug)
    from .lsp.server import serve

    serve()


def _size_range(text: str) -> tuple[int, int]:
    from .diagnostics import UsageError

    low, colon, high = text.partition(":")
    try:
        if not colon:
            raise ValueError
        return int(low), int(high)
    except ValueError:
        raise UsageError(f"--range takes LOW:HIGH, two sizes, e.g. 32:2048; got {text!r}") from None


_FORMATS = {"pt2": "torch.export program", "onnx": "ONNX model"}


@main.command("compile")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--to", "backend", type=click.Choice(["torch", "tvm"]), default="torch", show_default=True,
              help="torch: torch.export / ONNX file; tvm: a TVM library directory (model.so, params, manifest).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Artifact to write (default: SPEC's name with the format's suffix here; build/NAME for tvm).")
@click.option("--format", "fmt", type=click.Choice(sorted(_FORMATS)), default=None,
              help="torch only. pt2: torch.export program; onnx: ONNX (opset 18). Default: from -o's suffix, else pt2.")
@click.option("--dynamic-batch", is_flag=True, help="Make the batch axis dynamic in the artifact.")
@click.option("--fold-bn", is_flag=True,
              help="onnx only: fold each batch norm into the convolution before it (kept as a node by default).")
@click.option("--outputs", default=None, metavar="NAME,...",
              help="Return these layers' or block instances' tensors instead of the outputs (feature extraction; "
                   "`check --taps` reports them), e.g. --outputs layer2,layer3,layer4.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="The batch the artifact is specialised to (without --dynamic-batch).")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Load this state_dict (torch.save) instead of initialising the parameters.")
@click.option("--weights-map", "weights_map", multiple=True, metavar="RULE",
              help="Rename --weights' keys from another layout, in order: PATTERN=REPLACEMENT (a regular "
                   "expression, e.g. '^module\\.=' or '^backbone\\.='), -PATTERN (leave those tensors out), or "
                   "@FILE of rules, one per line (repeatable).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Seed of the default initialisation.")
@click.option("--target", default="llvm", show_default=True,
              help="tvm only: llvm (this CPU), cuda, h100 or h200 (TVM's complete sm_90 target), or a TVM target "
                   "as a JSON dict.")
@click.option("--tune", is_flag=True, help="tvm only: tune the kernels with MetaSchedule first.")
@click.option("--cuda-graph", "cuda_graph", is_flag=True,
              help="tvm only, CUDA targets: capture the kernel launches in a CUDA graph, replayed on every call.")
@trials_option
@trials_per_task_option
@click.option("--tune-db", type=click.Path(path_type=Path), default=None,
              help="tvm only: tuning database directory to apply (and, with --tune, to fill); default with --tune: "
                   "$CNNDSL_TUNE_DB or ~/.cache/cnndsl/tuning; without: cnndsl's pre-tuned kernels for h100/h200. "
                   "`none`: no records at all.")
@layout_option
@winograd_option
@input_option
@_spec_options
@color_option
@debug_option
def compile_spec(spec: Path, backend: str, output: Path | None, fmt: str | None, dynamic_batch: bool,
                 fold_bn: bool, outputs: str | None, batch: int, weights: Path | None, weights_map: tuple[str, ...],
                 seed: int, target: str, tune: bool, cuda_graph: bool, trials: int, trials_per_task: int | None,
                 tune_db: Path | None, layout: str, winograd: str, inputs: tuple[str, ...],
                 import_path: tuple[Path, ...], max_layers: int | None, color: bool | None, debug: bool) -> None:
    """Compile SPEC to a deployable artifact (checking it first; errors stop before any lowering)."""
    import time

    if backend == "tvm" and (fmt or fold_bn):
        raise click.UsageError("--format and --fold-bn apply to --to torch (a TVM build folds batch norm itself)")
    if backend == "torch" and (tune or tune_db or target != "llvm" or layout != "auto" or winograd != "auto"
                               or cuda_graph):
        raise click.UsageError("--target, --tune, --tune-db, --layout, --winograd and --cuda-graph apply to --to tvm")
    taps = _names(outputs, "--outputs")
    if weights_map and weights is None:
        raise click.UsageError("--weights-map renames the keys of --weights; give --weights too")
    start = time.perf_counter()
    with _reported_errors(color, debug, "compiling"):
        network = _load(spec, inputs, import_path, max_layers)
        if taps:
            network = network.tapped(taps)
        rules = _weights_map_rules(weights_map)
        if backend == "tvm":
            no_records = tune_db is not None and str(tune_db) == "none"
            if no_records and tune:
                raise click.UsageError("--tune needs a database to fill; --tune-db none builds without any records")
            tune_db = None if no_records else tune_db
            compiled = network.to_tvm(target, output or Path("build") / spec.stem, batch, trials if tune else 0,
                                      tune_db, layout=layout, pretuned=not no_records, winograd=winograd, seed=seed,
                                      weights=weights,
                                      weights_map=rules, dynamic_batch=dynamic_batch, cuda_graph=cuda_graph,
                                      log=lambda line: click.echo(line, err=True), trials_per_task=trials_per_task)
            tuned = (f", {compiled.tuning.summary()}" if tune and compiled.tuning else
                     f", records from {tune_db}" if tune_db else "")
            any_batch = ", any batch" if dynamic_batch else ""
            click.echo(f"wrote {compiled.path}/ (TVM {compiled.target}, {compiled.layout.upper()}{tuned}{any_batch}) "
                       f"in {time.perf_counter() - start:.1f} s")
            return
        fmt = _artifact_format(fmt, output)
        output = output or Path(f"{spec.stem}.{fmt}")
        if fold_bn and fmt != "onnx":
            raise click.UsageError("--fold-bn applies to ONNX (-o NAME.onnx or --format onnx)")
        network.export(output, kind=fmt, dynamic_batch=dynamic_batch, batch=batch, seed=seed, weights=weights,
                       weights_map=rules, fold_bn=fold_bn)
    graph = network.graph
    params = sum(graph.facts(node).params.params for node in graph.inference_nodes())  # what the artifact holds
    batch_axis = "N" if dynamic_batch else str(batch)
    shapes = ", ".join(f"{name}: {fmt_shape((batch_axis, *network.graph.shape(node)))}"
                       for name, node in network.graph.inputs.items())
    click.echo(f"wrote {output} ({_FORMATS[fmt]}, {params:,} parameters, {shapes}) "
               f"in {time.perf_counter() - start:.1f} s")


@main.command("tune")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--target", default="llvm", show_default=True,
              help="llvm (this CPU), cuda, h100 or h200, or a TVM target as a JSON dict: the target you will "
                   "compile for.")
@trials_option
@trials_per_task_option
@click.option("--tune-db", type=click.Path(path_type=Path), default=None,
              help="Tuning database directory (default: $CNNDSL_TUNE_DB or ~/.cache/cnndsl/tuning).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="The batch to tune for (kernels are specialised to it).")
@click.option("--rpc-tracker", "rpc_tracker", default=None, metavar="HOST:PORT",
              help="Measure on the RPC servers registered with this TVM tracker (python -m tvm.exec.rpc_tracker) "
                   "under --rpc-key, in parallel; candidates are built here. See docs/distributed-tuning.md.")
@click.option("--rpc-key", "rpc_key", default=None, metavar="KEY",
              help="The device key the servers registered with (python -m tvm.exec.rpc_server --key KEY).")
@click.option("--rpc-timeout", "rpc_timeout", type=click.IntRange(min=1), default=120, show_default=True,
              help="Seconds one remote measurement (connect, upload, run) may take before it counts as failed.")
@click.option("--builders", type=click.IntRange(min=1), default=None,
              help="Local processes building candidates (default: one per core).")
@click.option("--rounds-via", "rounds_via", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Tune in rounds through files, for a target this machine cannot reach: write the next round's "
                   "candidates, built, as a bundle DIR/round-NNNN (and .tar.xz) for `cnndsl measure` to time "
                   "where the target is. See docs/round-tuning.md.")
@click.option("--ingest", type=click.Path(path_type=Path), default=None, metavar="RESULTS",
              help="With --rounds-via: commit the last round's measurements (cnndsl measure's results.json) to "
                   "the database first, then write the next round.")
@click.option("--candidates", type=click.IntRange(min=1), default=500, show_default=True,
              help="With --rounds-via: candidates in the round written.")
@click.option("--bundle-limit", "bundle_limit", type=click.FloatRange(min=0.1), default=48.0, show_default=True,
              metavar="MIB", help="With --rounds-via: refuse a round bundle larger than this, packed.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True,
              help="With --rounds-via: the search's seed (each round adds its number).")
@layout_option
@winograd_option
@input_option
@_spec_options
@debug_option
def tune_spec(spec: Path, target: str, trials: int, trials_per_task: int | None, tune_db: Path | None, batch: int,
              rpc_tracker: str | None, rpc_key: str | None, rpc_timeout: int, builders: int | None,
              rounds_via: Path | None, ingest: Path | None, candidates: int, bundle_limit: float, seed: int,
              layout: str, winograd: str, inputs: tuple[str, ...], import_path: tuple[Path, ...],
              max_layers: int | None, debug: bool) -> None:
    """Tune SPEC's kernels for TARGET into a database, without compiling. Every round is written as it is
    measured: an interrupted run keeps its records and the next run resumes from them. Compile with
    `cnndsl compile SPEC --to tvm --tune-db DIR` (same --target, --batch and --layout). With --rounds-via,
    the candidates are measured elsewhere: `cnndsl measure` there, --ingest here."""
    import time

    if rpc_key and not rpc_tracker:
        raise click.UsageError("--rpc-key names the servers of --rpc-tracker; give --rpc-tracker too")
    if ingest and not rounds_via:
        raise click.UsageError("--ingest takes the measurements of a round of --rounds-via DIR; give --rounds-via")
    if rounds_via and rpc_tracker:
        raise click.UsageError("--rounds-via and --rpc-tracker are two ways to measure elsewhere: give one")
    start = time.perf_counter()
    if rounds_via:
        with _reported_errors(None, debug, "tuning"):
            network = _load(spec, inputs, import_path, max_layers)
            from .backends.tvm import tune_round

            round_report = tune_round(network.graph, network.weights(), target, rounds_via, candidates, ingest,
                                      tune_db, batch, layout, winograd, seed, bundle_limit,
                                      log=lambda line: click.echo(line, err=True))
        click.echo(f"{round_report.summary()} ({time.perf_counter() - start:.0f} s); measure it with "
                   f"`cnndsl measure {round_report.bundle}.tar.xz -o results.json` where the target is")
        return
    with _reported_errors(None, debug, "tuning"):
        network = _load(spec, inputs, import_path, max_layers)
        from .backends.tvm import Tracker, default_database_dir, tune_network

        tracker = Tracker.parse(rpc_tracker, rpc_key, rpc_timeout) if rpc_tracker else None
        if tracker is not None:
            tracker.check_servers()  # before lowering and task extraction: a wrong address fails in seconds
        database = tune_db or default_database_dir()
        report = tune_network(network.graph, network.weights(), target, trials, database, batch, layout,
                              trials_per_task, log=lambda line: click.echo(line, err=True), winograd=winograd,
                              tracker=tracker, builders=builders)
    estimate = f"; network estimate {report.estimate_ms:.4g} ms" if report.estimate_ms is not None else ""
    click.echo(f"{report.summary()}{estimate}; database {database} ({time.perf_counter() - start:.0f} s)")


@main.command("measure")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("results.json"), show_default=True,
              help="The results file, rewritten after every candidate (a killed run keeps what it measured).")
@click.option("--budget", type=click.FloatRange(min=1), default=420.0, show_default=True,
              help="Seconds for the whole round; candidates left when it is spent are not measured.")
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timings per candidate.")
@click.option("--min-repeat-ms", "min_repeat_ms", type=click.IntRange(min=0), default=10, show_default=True,
              help="Each timing repeats the kernel for at least this long.")
@click.option("--timeout", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds one candidate may take before its process is replaced and it counts as failed.")
@debug_option
def measure_round(bundle: Path, output: Path, budget: float, repeat: int, min_repeat_ms: int, timeout: float,
                  debug: bool) -> None:
    """Time a tuning round's candidates (BUNDLE: a directory or .tar.xz from `cnndsl tune --rounds-via`) on
    this machine's device, with TVM's runtime alone (`python -m cnndsl.measure` is the same without cnndsl's
    command line). Give the results to `cnndsl tune --ingest`."""
    from .measure import measure_bundle, summary
    from .runtime import ArtifactError

    with _reported_errors(None, debug, "measuring"):
        try:
            results = measure_bundle(bundle, output, budget, repeat, min_repeat_ms, timeout,
                                     log=lambda line: click.echo(line, err=True))
        except ArtifactError as exc:
            _fail_usage(str(exc), debug)
    click.echo(summary(results, output))


@main.group("tune-db")
def tune_db_group() -> None:
    """Look into and pool tuning databases (`cnndsl tune --tune-db DIR`)."""


@tune_db_group.command("show")
@click.argument("database", type=click.Path(path_type=Path))
@debug_option
def tune_db_show(database: Path, debug: bool) -> None:
    """List DATABASE's tuned tasks: target, measured records, best run time."""
    with _reported_errors(None, debug, "reading the tuning database"):
        from .backends.tvm.records import summarize
        from .report.text import format_table

        tasks = summarize(database)
    if not tasks:
        click.echo(f"{database}: no measured records")
        return
    rows: list[tuple[str, ...]] = [(task.name, task.target, f"{task.records:,}", f"{task.best_us:.4g}")
                                   for task in tasks]
    table = format_table(("Task", "Target", "Records", "Best (us)"), rows, right={"Records", "Best (us)"})
    click.echo("\n".join(table))
    click.echo(f"\n{len(tasks)} task(s), {sum(t.records for t in tasks):,} measured record(s); "
               f"sum of the best times {sum(t.best_us for t in tasks):.4g} us")


@tune_db_group.command("merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The database to merge into (created, or added to).")
@debug_option
def tune_db_merge(sources: tuple[Path, ...], output: Path, debug: bool) -> None:
    """Merge the measured records of SOURCES (tuning databases) into --output, each record once."""
    with _reported_errors(None, debug, "merging tuning databases"):
        from .backends.tvm.records import merge

        merged, workloads = merge(list(sources), output)
    click.echo(f"merged {merged:,} new record(s) from {len(sources)} database(s) into {output} "
               f"({workloads} workload(s))")


@main.command("run")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--input", "inputs", multiple=True, metavar="[NAME=]FILE.npy",
              help="An input array (.npy); NAME= when the network has several inputs (repeatable).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write the output to this .npy (several outputs: .npz).")
@debug_option
def run_artifact(artifact: Path, inputs: tuple[str, ...], output: Path | None, debug: bool) -> None:
    """Run a TVM ARTIFACT directory (from `compile --to tvm`) on .npy inputs, with the TVM runtime only."""
    from .extras import MissingExtra, require

    try:
        require("running a compiled artifact", "numpy", "tvm")
    except MissingExtra as exc:
        _fail_usage(str(exc), debug)
    import numpy as np

    from .diagnostics import UsageError
    from .files import atomic_file
    from .runtime import ArtifactError, load

    try:
        model = load(artifact)
        arrays = _read_inputs(inputs, list(model.inputs))
        result = model(**arrays)
        results = result if isinstance(result, tuple) else (result,)
        named = dict(zip(model.outputs, results, strict=True))
        if output is not None:
            with atomic_file(output, "output") as temporary, temporary.open("wb") as file:
                if len(named) == 1:  # to the file object: np.save would append `.npy` to any other name
                    np.save(file, results[0])
                else:
                    np.savez(file, **named)  # type: ignore[arg-type]
            click.echo(f"wrote {output}")
    except (ArtifactError, UsageError, ModuleNotFoundError) as exc:  # the runtime says what to install
        _fail_usage(str(exc), debug)
    except Exception as exc:
        if debug:
            raise
        _fail_usage(f"running {artifact} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                    debug)
    for name, value in named.items():
        top = ""
        if value.ndim == 2 and value.shape[1] > 1:
            top = f"; argmax per sample {value.argmax(axis=1).tolist()[:16]}"
        click.echo(f"{name}: {fmt_shape(value.shape)}, mean {value.mean():.6g}, "
                   f"min {value.min():.6g}, max {value.max():.6g}{top}")



def _json_out(text: str, reports: list[str] | None) -> None:
    """A report's JSON: printed, or kept for the list of several specs."""
    if reports is None:
        click.echo(text)
    else:
        reports.append(text)

def _read_inputs(items: tuple[str, ...], names: list[str]) -> dict[str, Any]:
    import numpy as np

    from .files import readable_file
    from .runtime import ArtifactError

    if len(items) != len(names):
        raise ArtifactError(f"the network takes {len(names)} input(s) ({', '.join(names)}); got {len(items)} --input")
    arrays = {}
    for position, item in enumerate(items):
        name, sep, file = item.partition("=")
        if not sep:
            name, file = names[position], item
        if name not in names:
            raise ArtifactError(f"--input names `{name}`; the network's inputs are {', '.join(names)}")
        try:
            arrays[name] = np.load(readable_file(Path(file), "input"), allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ArtifactError(f"cannot read {file} as a .npy array: {exc}") from exc
        if not isinstance(arrays[name], np.ndarray):
            raise ArtifactError(f"{file} holds several arrays (.npz); --input takes one .npy array")
    return arrays


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--target", type=click.Choice(["llvm", "cuda"]), default="llvm", show_default=True)
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True, default=(1, 16), show_default=True,
              help="Batch sizes to measure (repeatable).")
@click.option("--trials", type=click.IntRange(min=0), default=0, show_default=True,
              help="Tune tasks missing from the tuning database with this many trials first (0: use what it has).")
@click.option("--tune-db", type=click.Path(path_type=Path), default=None, help="Tuning database directory.")
@click.option("--rounds", type=click.IntRange(min=1), default=7, show_default=True,
              help="Interleaved rounds; the table shows their median and spread.")
@click.option("--no-compile", "skip_compile", is_flag=True, help="Skip torch.compile (it needs a C++ compiler).")
@layout_option
@winograd_option
@_spec_options
@debug_option
def bench(spec: Path, target: str, batches: tuple[int, ...], trials: int, tune_db: Path | None, rounds: int,
          skip_compile: bool, layout: str, winograd: str, import_path: tuple[Path, ...], max_layers: int | None,
          debug: bool) -> None:
    """Latency of SPEC: PyTorch eager, torch.compile, TVM untuned and TVM tuned, measured interleaved."""
    from .bench import render_table, run_benchmark

    with _reported_errors(None, debug, "benchmarking"):
        network = _load(spec, (), import_path, max_layers)
        rows = run_benchmark(network, target, batches, trials, tune_db, rounds, not skip_compile, layout,
                             log=lambda line: click.echo(line, err=True), winograd=winograd)
    click.echo(render_table(network.name, target, rows))


@main.group("import")
def import_group() -> None:
    """Translate another format into a .cnn spec."""


@import_group.command("darknet")
@click.argument("cfg", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="The .cnn file to write (default: CFG's name with .cnn, here).")
@click.option("--name", default=None, help="The network's name (default: from the file name).")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@color_option
@debug_option
def import_darknet(cfg: Path, output: Path | None, name: str | None, force: bool, color: bool | None,
                   debug: bool) -> None:
    """Translate a Darknet .cfg (e.g. yolov3.cfg) into a readable .cnn spec, then check it."""
    from .api import load
    from .diagnostics import SpecError, UsageError
    from .files import atomic_file, readable_file
    from .importers.darknet import translate

    output = output or Path(f"{cfg.stem}.cnn")
    with _reported_errors(color, debug, "importing"):
        translation = translate(readable_file(cfg, "Darknet file"), name)
        if output.exists() and not force:
            raise UsageError(f"{output} exists; pass --force to replace it, or -o to write elsewhere")
        with atomic_file(output, "output") as temporary:  # written only once it checks
            temporary.write_text(translation.text)
            try:
                network = load(temporary)
            except SpecError as exc:
                raise SpecError(translation.relocated(exc.diagnostics, temporary)) from exc
    totals = network.report("darknet").totals  # the network checked: its totals are known
    click.echo(f"wrote {output}: {translation.layers} Darknet layers ({len(network.graph)} ops), "
               f"{totals.params:,} parameters, "
               f"{totals.bflops:.3f} BFLOPs (darknet convention) at "
               f"{fmt_shape(next(iter(network.report().inputs.values())))}")


@contextmanager
def _own_warnings_as_lines() -> Iterator[None]:
    """cnndsl's own warnings print as one `warning: ...` line; other libraries' keep Python's format."""
    import warnings

    package_dir = str(Path(__file__).parent)
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
def _reported_errors(color: bool | None, debug: bool, doing: str) -> Iterator[None]:
    """Spec errors -> diagnostics and exit 1; usage errors -> exit 2; anything else is a bug: exit 2 with
    a one-line message (the traceback with --debug)."""
    from .diagnostics import SpecError, UsageError
    from .report.diagnostics import render_diagnostics

    try:
        with _own_warnings_as_lines():
            yield
    except UsageError as exc:
        _fail_usage(str(exc), debug)
    except SpecError as exc:
        use_color = _color(color, sys.stderr)
        click.echo(render_diagnostics(exc.diagnostics, use_color), err=True, color=use_color)
        sys.exit(1)
    except (click.ClickException, SystemExit, KeyboardInterrupt):
        raise
    except MemoryError:
        _fail_usage(f"out of memory while {doing}; a smaller --batch or input size may fit", debug)
    except ModuleNotFoundError as exc:
        from .extras import MissingExtra, missing_message

        if debug:
            raise
        _fail_usage(str(exc) if isinstance(exc, MissingExtra) else missing_message(doing, exc.name or "?"), debug)
    except Exception as exc:
        if debug:
            raise
        if "can't allocate memory" in str(exc) or "not enough memory" in str(exc):  # PyTorch's allocator
            _fail_usage(f"out of memory while {doing} ({str(exc).splitlines()[0][:160]}); a smaller --batch or "
                        "input size may fit", debug)
        _fail_usage(f"{doing} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}\n"
                    "this is a bug in cnndsl or the backend; rerun with --debug for the traceback and report it",
                    debug)


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
@click.argument("code", required=False)
def explain(code: str | None) -> None:
    """Explain a diagnostic code, e.g. `cnndsl explain W100`; without one, list every code."""
    from .diagnostics import CODES, FIXES, did_you_mean

    if code is None:
        for name, entry in CODES.items():
            click.echo(f"{name}  {entry.severity.value:<7}  {entry.title}")
        return
    info = CODES.get(code.upper())
    if info is None:
        hint = did_you_mean(code.upper(), list(CODES))
        _fail_usage(f"unknown diagnostic code {code!r}{'; ' + hint if hint else ''}; `cnndsl explain` lists them "
                    "(docs/diagnostics.md)", False)
    assert info is not None
    click.echo(f"{code.upper()} ({info.severity.value}): {info.title}\nexample: {info.example}\n"
               f"fix: {FIXES[code.upper()]}")


def _color(option: bool | None, stream: object) -> bool:
    """--color/--no-color, else colour when writing to a terminal (and NO_COLOR is unset)."""
    import os

    if option is not None:
        return option
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


def _fail_usage(message: str, debug: bool) -> None:
    from .report.diagnostics import printable

    message = "\n".join(printable(line) for line in message.splitlines())
    click.echo(f"error: {message}" if not message.split(":")[0].endswith(".cnn") else message, err=True)
    sys.exit(2)


def run() -> None:
    """The console script. Like mypy, it flushes its output and leaves with os._exit: freeing a large
    graph object by object at interpreter exit took 0.3 s of a 2.5 s run, and a closed pipe
    (`cnndsl check ... | head`) ends quietly instead of with a BrokenPipeError."""
    import os

    try:
        # Not click's standalone mode: it turns Ctrl-C into "Aborted!" and exit 1, the code of a spec error.
        returned = main.main(prog_name="cnndsl", standalone_mode=False)
        code = returned if isinstance(returned, int) else 0
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("\ninterrupted", err=True)
        code = 130  # 128 + SIGINT, as shells report it
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
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
