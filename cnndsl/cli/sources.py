"""Commands that write or serve spec text: fmt, lsp and import."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..layout import fmt_shape
from .common import STDIN, color_option, debug_option, fail_usage, limits_for, reported_errors, worst_exit


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
