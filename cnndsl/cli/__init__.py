"""The `cnndsl` command: each command parses its arguments, calls the Python API (`cnndsl.api`, or the
runtime for artifacts) and renders what it returns, with the exit codes of cli/common.py. The commands
live by what they work on: reports.py (check, diff, draw, sizes, schema, explain), artifacts.py
(compile, run, bench), tuning.py (tune, measure, tune-db), sources.py (fmt, lsp, import)."""

from __future__ import annotations

import os
import sys

import click

from .artifacts import bench, compile_spec, run_artifact
from .common import parse_input_override
from .reports import check, diff, draw, explain, schema, sizes
from .sources import fmt, import_group, language_server
from .tuning import measure_round, tune_db_group, tune_spec

__all__ = ["main", "parse_input_override", "run"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cnndsl")
def main() -> None:
    """cnndsl: write a CNN as a .cnn file; check shapes, costs and receptive fields before any tensor exists."""


for _command in (check, diff, draw, sizes, fmt, language_server, compile_spec, tune_spec, measure_round,
                 tune_db_group, run_artifact, bench, import_group, schema, explain):
    main.add_command(_command)


def run() -> None:
    """The console script. Like mypy, it flushes its output and leaves with os._exit: freeing a large
    graph object by object at interpreter exit took 0.3 s of a 2.5 s run, and a closed pipe
    (`cnndsl check ... | head`) ends quietly instead of with a BrokenPipeError."""
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
