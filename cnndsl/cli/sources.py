"""Commands that write or serve spec text: fmt, lsp and import."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..layout import fmt_shape
from .common import STDIN, color_option, debug_option, fail_usage, limits_for, reported_errors, worst_exit

if TYPE_CHECKING:
    from ..api import Imported

F = TypeVar("F", bound=Callable[..., Any])


@click.command("fmt")
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
            with reported_errors(color, debug, "formatting"):
                if _format_one(path, check, show_diff):
                    changed.append(str(path))
        except SystemExit as exc:  # this file's problem is reported; the other files are still formatted
            worst = max(worst, worst_exit(exc.code))
    if check and changed:
        click.echo("\n".join(f"would reformat {name}" for name in changed), err=True)
        worst = max(worst, 1)
    sys.exit(worst)


def _format_one(path: Path, check: bool, show_diff: bool) -> bool:
    """Format one file (or standard input, `-`); whether it changes."""
    import difflib

    from ..diagnostics import UsageError
    from ..files import atomic_file
    from ..syntax.fmt import FormatError, format_text
    from ..syntax.source import read_source, source_from_bytes

    limit = limits_for(None).spec_bytes
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


@click.command("lsp")
@debug_option
def language_server(debug: bool) -> None:
    """Serve the language server protocol over stdin and stdout (editors start it: see editors/)."""
    from ..extras import MissingExtra, require

    try:
        require("the language server", "pygls", "lsprotocol")
    except MissingExtra as exc:
        fail_usage(str(exc))
    from ..lsp.server import serve

    serve()


def import_options(default_name: str) -> Callable[[F], F]:
    """The options every model import shares: where to write, the name, --flat, --no-verify, --force."""
    def decorate(command: F) -> F:
        for option in reversed([
            click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
                         help=f"The .cnn file to write (default: {default_name} with .cnn, here)."),
            click.option("--name", default=None, help=f"The network's name (default: {default_name})."),
            click.option("--flat", is_flag=True, help="One statement per layer: no chains and no repeats."),
            click.option("--no-verify", is_flag=True, help="Skip compiling the spec back to PyTorch with the "
                         "source's weights and comparing its outputs with the source's."),
            click.option("--force", is_flag=True, help="Replace the output file if it exists."),
            color_option, debug_option]):
            command = option(command)
        return command
    return decorate


@click.group("import")
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
    from ..api import load
    from ..diagnostics import SpecError, UsageError
    from ..files import atomic_file, readable_file
    from ..importers.darknet import translate

    output = output or Path(f"{cfg.stem}.cnn")
    with reported_errors(color, debug, "importing"):
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
               f"{totals.params:,} parameters, {totals.bflops:.3f} BFLOPs (darknet convention) at "
               f"{fmt_shape(next(iter(network.input_shapes.values())))}")


@import_group.command("torch")
@click.argument("target", metavar="MODULE:CALLABLE")
@click.option("--input", "inputs", multiple=True, required=True, metavar="NAME=SHAPE",
              help="An input of forward with its per-sample shape (e.g. image=3x224x224); one per argument, in order.")
@click.option("--args", "arguments", default=None, metavar="JSON",
              help='Keyword arguments for the callable, a JSON object (e.g. \'{"num_classes": 10}\').')
@import_options("the callable's name")
def import_torch(target: str, inputs: tuple[str, ...], arguments: str | None, output: Path | None, name: str | None,
                 flat: bool, no_verify: bool, force: bool, color: bool | None, debug: bool) -> None:
    """Import a PyTorch model (e.g. torchvision.models:resnet50) as a readable .cnn spec: traced with torch.fx,
    layer names the module's own, checked, and verified against the model (its state_dict loads strictly
    into the compiled spec and the outputs match)."""
    from ..api import import_torch as run_import
    from ..importers.pytorch import parse_inputs

    with reported_errors(color, debug, "importing"):
        shapes = parse_inputs(inputs)
    default = target.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    output = output or Path(f"{name or default}.cnn")
    _run_import(output, force, color, debug, "PyTorch",
                lambda: run_import(target, shapes, name or output.stem, arguments, flat, verify=not no_verify))


def _run_import(output: Path, force: bool, color: bool | None, debug: bool, kind: str,
                run: Callable[[], Imported]) -> None:
    """Refuse to overwrite without --force, import, write the spec only once it checked, summarise."""
    from ..diagnostics import UsageError
    from ..files import atomic_file

    with reported_errors(color, debug, "importing"):
        if output.exists() and not force:
            raise UsageError(f"{output} exists; pass --force to replace it, or -o to write elsewhere")
        imported = run()
        with atomic_file(output, "output") as temporary:
            temporary.write_text(imported.text)
    _import_summary(output, imported, kind)


def _import_summary(output: Path, imported: Imported, kind: str) -> None:
    totals = imported.network.report().totals
    source = f" ({kind}: {imported.source_params:,})" if imported.source_params is not None else ""
    click.echo(f"wrote {output}: {len(imported.network.graph)} ops, {totals.params:,} parameters{source}, "
               f"{totals.macs:,} MACs at {', '.join(fmt_shape(s) for s in imported.network.input_shapes.values())}")
    if imported.max_difference is not None:
        click.echo(f"verified: the source's weights load strictly; outputs equal to {imported.max_difference:.1e} "
                   "of their largest value")
    for note in imported.notes:
        click.echo(f"note: {note}")


@import_group.command("onnx")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--input", "inputs", multiple=True, metavar="NAME=SHAPE",
              help="A per-sample input shape where the model's is symbolic (e.g. x=3x224x224).")
@import_options("MODEL's name")
def import_onnx(model: Path, inputs: tuple[str, ...], output: Path | None, name: str | None, flat: bool,
                no_verify: bool, force: bool, color: bool | None, debug: bool) -> None:
    """Import an ONNX model (opset 9 and later) as a readable .cnn spec: constants folded, initializer names
    kept as layer names, checked, and verified against onnxruntime."""
    from ..api import import_onnx as run_import
    from ..files import readable_file
    from ..importers.pytorch import parse_inputs

    with reported_errors(color, debug, "importing"):
        shapes = parse_inputs(inputs) if inputs else None
    _run_import(output or Path(f"{model.stem}.cnn"), force, color, debug, "ONNX initializers",
                lambda: run_import(readable_file(model, "ONNX model"), name, shapes, flat, verify=not no_verify))


@import_group.command("caffe")
@click.argument("prototxt", type=click.Path(path_type=Path))
@import_options("PROTOTXT's name")
def import_caffe(prototxt: Path, output: Path | None, name: str | None, flat: bool, no_verify: bool, force: bool,
                 color: bool | None, debug: bool) -> None:
    """Import a Caffe prototxt (e.g. a BVLC deploy.prototxt) as a readable .cnn spec, Caffe's ceil-mode
    pooling kept, checked (a prototxt holds no weights: there is nothing to verify against)."""
    from ..api import import_caffe as run_import
    from ..files import readable_file

    _run_import(output or Path(f"{prototxt.stem}.cnn"), force, color, debug, "Caffe",
                lambda: run_import(readable_file(prototxt, "Caffe prototxt"), name, flat))


@import_group.command("keras")
@click.argument("model", type=click.Path(path_type=Path))
@import_options("MODEL's name")
def import_keras(model: Path, output: Path | None, name: str | None, flat: bool, no_verify: bool, force: bool,
                 color: bool | None, debug: bool) -> None:
    """Import a Keras 3 model (model.keras, or the config.json of model.to_json()) as a readable .cnn spec:
    its configuration read as data, channels-last made channels-first, checked, and verified against Keras
    where the file holds weights."""
    from ..api import import_keras as run_import
    from ..files import readable_file

    _run_import(output or Path(f"{model.stem}.cnn"), force, color, debug, "Keras weights",
                lambda: run_import(readable_file(model, "Keras model"), name, flat, verify=not no_verify))
