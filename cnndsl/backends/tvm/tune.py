"""MetaSchedule tuning with a persistent database and a progress bar.

Two facts of these machines shape it. MetaSchedule's default LocalBuilder starts fresh worker
processes for every batch, and each first imports `tvm.s_tir.tensor_intrin` (~36 s here) inside the
build, past its 30 s timeout, so every trial failed: `WarmWorkerBuilder` keeps its workers for the
whole run and imports the intrinsics when a worker starts, outside any build's timeout. And a second
compile of the same workloads must tune nothing: tasks whose workload already has records for the
target in the database are skipped before the task scheduler starts.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

DEFAULT_TRIALS_PER_ITER = 64


def default_database_dir() -> Path:
    """$CNNDSL_TUNE_DB, else the user's cache directory (XDG): ~/.cache/cnndsl/tuning."""
    if os.environ.get("CNNDSL_TUNE_DB"):
        return Path(os.environ["CNNDSL_TUNE_DB"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "cnndsl" / "tuning"


def open_database(directory: Path) -> ms.database.JSONDatabase:
    directory.mkdir(parents=True, exist_ok=True)
    return ms.database.JSONDatabase(path_workload=str(directory / "database_workload.json"),
                                    path_tuning_record=str(directory / "database_tuning_record.json"),
                                    allow_missing=True)


def _import_tensor_intrinsics() -> None:
    import tvm.s_tir.tensor_intrin  # noqa: F401  (registers the intrinsics schedules may use)


@derived_object
class WarmWorkerBuilder(ms.builder.PyBuilder):
    """Builds candidates in worker processes that import the tensor intrinsics once, when they start,
    and live for the whole tuning run. Each build still has a timeout: a pathological candidate (LLVM
    on a huge unrolled loop) took over 45 minutes in one build here, and an in-process builder had no
    way to stop it. A timed-out worker is killed and replaced; the candidate counts as a failed trial."""

    def __init__(self, timeout_sec: float = 60.0, max_workers: int | None = None) -> None:
        super().__init__()
        from tvm.support.popen_pool import PopenPoolExecutor

        self.timeout_sec = timeout_sec
        self.pool = PopenPoolExecutor(max_workers=max_workers or os.cpu_count() or 1, timeout=timeout_sec,
                                      initializer=_import_tensor_intrinsics)

    def build(self, build_inputs: list[ms.builder.BuilderInput]) -> list[ms.builder.BuilderResult]:
        from tvm.s_tir.meta_schedule.builder.local_builder import _serialize_params, _worker_func
        from tvm.support.popen_pool import StatusKind

        jobs = [(None, None, item.mod, item.target, _serialize_params(item.params)) for item in build_inputs]
        results = []
        for outcome in self.pool.map_with_error_catching(lambda job: _worker_func(*job), jobs):
            if outcome.status == StatusKind.COMPLETE:
                results.append(ms.builder.BuilderResult(outcome.value, None))
            elif outcome.status == StatusKind.TIMEOUT:
                results.append(ms.builder.BuilderResult(None, f"build timed out after {self.timeout_sec:.0f} s"))
            else:
                results.append(ms.builder.BuilderResult(None, f"build failed: {outcome.value}"))
        return results

    def shutdown(self) -> None:
        self.pool.shutdown()


@dataclass
class TuningProgress:
    """What the progress bar shows: trials done, best latency per task, time left."""

    total: int
    names: list[str]
    done: int = 0
    best_ms: dict[int, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def seconds_left(self) -> float:
        elapsed = time.perf_counter() - self.started
        return elapsed / self.done * (self.total - self.done) if self.done else 0.0

    def line(self) -> str:
        best = ", ".join(f"{self.names[i]} {ms_:.3f} ms" for i, ms_ in sorted(self.best_ms.items())[-3:])
        return f"best: {best}" if best else ""


def _progress_callback(progress: TuningProgress, bar: object) -> ms.measure_callback.PyMeasureCallback:
    @derived_object
    class Progress(ms.measure_callback.PyMeasureCallback):
        def apply(self, task_scheduler: object, task_id: int, measure_candidates: list[object],
                  builder_results: list[object], runner_results: list[ms.runner.RunnerResult]) -> None:
            for result in runner_results:
                if result.error_msg is None and result.run_secs:
                    latency = 1e3 * sum(float(s) for s in result.run_secs) / len(result.run_secs)
                    progress.best_ms[task_id] = min(latency, progress.best_ms.get(task_id, float("inf")))
            progress.done += len(measure_candidates)
            bar.update(len(measure_candidates))  # type: ignore[attr-defined]

    return Progress()


def untuned_tasks(tasks: list[ms.ExtractedTask], database: ms.database.Database,
                  target: tvm.target.Target) -> list[ms.ExtractedTask]:
    """Tasks without a tuning record for this target: the only ones a tuning run needs to measure."""
    pending = []
    for task in tasks:
        workload = task.dispatched[0]
        known = database.has_workload(workload)
        if not known or database.query_tuning_record(workload, target, task.task_name) is None:
            pending.append(task)
    return pending


def fused(module: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """The preparation `compile_relax` applies before it looks kernels up in the database (dispatch,
    legalisation, fusion): tasks extracted from it carry the keys the compile will query."""
    from tvm import relax
    from tvm.relax import pipeline

    try:
        dispatch = pipeline.library_dispatch_passes(target)
    except (ValueError, AttributeError):
        dispatch = []
    passes = [*dispatch, relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
              relax.transform.FoldConstant(), relax.transform.FuseOps(), relax.transform.FuseTIR()]
    with target:
        return tvm.transform.Sequential(passes)(module)


@dataclass
class TuningReport:
    tasks: int
    tuned_now: int
    trials: int
    seconds: float


def tune(module: tvm.IRModule, target: tvm.target.Target, database_dir: Path, trials: int,
         seed: int = 0, show_progress: bool = True) -> tuple[ms.database.Database, TuningReport]:
    """Tune every task of `module` not yet in the database (up to `trials` measurements in all)."""
    database = open_database(database_dir)
    tasks = ms.relax_integration.extract_tasks(fused(module, target), target)
    pending = untuned_tasks(tasks, database, target)
    start = time.perf_counter()
    if not pending or trials <= 0:
        return database, TuningReport(len(tasks), 0, 0, 0.0)
    logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.WARNING)
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        pending, work_dir=str(database_dir), seed=seed)
    names = [task.task_name for task in pending]
    progress = TuningProgress(trials, names)
    builder = WarmWorkerBuilder()
    # MetaSchedule may stop early when every task's search space is exhausted.
    bar: Any
    with click.progressbar(length=trials, label=f"tuning {len(pending)} tasks", show_pos=True, show_eta=True,
                           file=None if show_progress else open(os.devnull, "w"),  # noqa: SIM115
                           item_show_func=lambda _: progress.line()) as bar:
        ms.tune.tune_tasks(
            tasks=contexts, task_weights=weights, work_dir=str(database_dir), max_trials_global=trials,
            num_trials_per_iter=min(DEFAULT_TRIALS_PER_ITER, max(trials // len(pending), 4)),
            builder=builder, runner="local", database=database,
            measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"),
                               _progress_callback(progress, bar)])
    builder.shutdown()
    return database, TuningReport(len(tasks), len(pending), progress.done, time.perf_counter() - start)
