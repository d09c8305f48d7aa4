"""Commands that tune kernels: tune (here, on RPC servers, or in rounds through files), measure (a
round, where the target is) and tune-db (look into and pool databases)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .common import (
    debug_option,
    fail_usage,
    input_option,
    layout_option,
    load_spec,
    reported_errors,
    spec_options,
    trials_option,
    trials_per_task_option,
    winograd_option,
)


@click.command("tune")
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
@spec_options
@debug_option
def tune_spec(spec: Path, target: str, trials: int, trials_per_task: int | None, tune_db: Path | None, batch: int,
              rpc_tracker: str | None, rpc_key: str | None, rpc_timeout: int, builders: int | None,
              rounds_via: Path | None, ingest: Path | None, candidates: int, bundle_limit: float, seed: int,
              layout: str, winograd: str, inputs: tuple[str, ...], constants: tuple[str, ...],
              import_path: tuple[Path, ...], max_layers: int | None, debug: bool) -> None:
    """Tune SPEC's kernels for TARGET into a database, without compiling. Every round is written as it is
    measured: an interrupted run keeps its records and the next run resumes from them. Compile with
    `cnndsl compile SPEC --to tvm --tune-db DIR` (same --target, --batch and --layout). With --rounds-via,
    the candidates are measured elsewhere: `cnndsl measure` there, --ingest here."""
    if rpc_key and not rpc_tracker:
        raise click.UsageError("--rpc-key names the servers of --rpc-tracker; give --rpc-tracker too")
    if ingest and not rounds_via:
        raise click.UsageError("--ingest takes the measurements of a round of --rounds-via DIR; give --rounds-via")
    if rounds_via and rpc_tracker:
        raise click.UsageError("--rounds-via and --rpc-tracker are two ways to measure elsewhere: give one")
    start = time.perf_counter()
    log = lambda line: click.echo(line, err=True)  # noqa: E731
    if rounds_via:
        with reported_errors(None, debug, "tuning"):
            network = load_spec(spec, inputs, import_path, max_layers, constants)
            round_report = network.tune_round(rounds_via, target, candidates, ingest, tune_db, batch, layout,
                                              winograd, seed, bundle_limit, log=log)
        click.echo(f"{round_report.summary()} ({time.perf_counter() - start:.0f} s); measure it with "
                   f"`cnndsl measure {round_report.bundle}.tar.xz -o results.json` where the target is")
        return
    with reported_errors(None, debug, "tuning"):
        from ..api import tuning_database

        network = load_spec(spec, inputs, import_path, max_layers, constants)
        database = tuning_database(tune_db)
        report = network.tune(target, trials, database, batch, layout, winograd, trials_per_task, rpc_tracker,
                              rpc_key, rpc_timeout, builders, log=log)
    estimate = f"; network estimate {report.estimate_ms:.4g} ms" if report.estimate_ms is not None else ""
    click.echo(f"{report.summary()}{estimate}; database {database} ({time.perf_counter() - start:.0f} s)")


@click.command("measure")
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
    from ..measure import measure_bundle, summary
    from ..runtime import ArtifactError

    with reported_errors(None, debug, "measuring"):
        try:
            results = measure_bundle(bundle, output, budget, repeat, min_repeat_ms, timeout,
                                     log=lambda line: click.echo(line, err=True))
        except ArtifactError as exc:
            fail_usage(str(exc))
    click.echo(summary(results, output))


@click.group("tune-db")
def tune_db_group() -> None:
    """Look into and pool tuning databases (`cnndsl tune --tune-db DIR`)."""


@tune_db_group.command("show")
@click.argument("database", type=click.Path(path_type=Path))
@debug_option
def tune_db_show(database: Path, debug: bool) -> None:
    """List DATABASE's tuned tasks: target, measured records, best run time."""
    with reported_errors(None, debug, "reading the tuning database"):
        from ..api import tuning_summary
        from ..report.text import format_table

        tasks = tuning_summary(database)
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
    with reported_errors(None, debug, "merging tuning databases"):
        from ..api import merge_tuning

        merged, workloads = merge_tuning(sources, output)
    click.echo(f"merged {merged:,} new record(s) from {len(sources)} database(s) into {output} "
               f"({workloads} workload(s))")
