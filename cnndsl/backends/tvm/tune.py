"""MetaSchedule tuning with a persistent database and a progress bar.

Two facts of these machines shape it. MetaSchedule's default LocalBuilder builds each candidate in a
worker process that first imports `tvm.s_tir.tensor_intrin` (~36 s here), past its 30 s timeout, so
every trial failed: candidates are built in this process instead (`InProcessBuilder`). And a second
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


@derived_object
class InProcessBuilder(ms.builder.PyBuilder):
    """Builds candidates in this process (the tensor intrinsics are imported once, here)."""

    def __init__(self) -> None:
        super().__init__()
        import tvm.s_tir.tensor_intrin  # noqa: F401  (registers the intrinsics schedules may use)

    def build(self, build_inputs: list[ms.builder.BuilderInput]) -> list[ms.builder.BuilderResult]:
        from tvm.s_tir.meta_schedule.builder.local_builder import default_export
        from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

        results = []
        for item in build_inputs:
            try:  # what LocalBuilder's default_build does, with the non-deprecated tirx.build
                module = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(item.mod)
                artifact = default_export(tvm.tirx.build(module, target=item.target))
                results.append(ms.builder.BuilderResult(artifact, None))
            except Exception as exc:  # a candidate that does not build is a failed trial, not a crash
                results.append(ms.builder.BuilderResult(None, f"{type(exc).__name__}: {exc}"))
        return results


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
    # MetaSchedule may stop early when every task's search space is exhausted.
    bar: Any
    with click.progressbar(length=trials, label=f"tuning {len(pending)} tasks", show_pos=True, show_eta=True,
                           file=None if show_progress else open(os.devnull, "w"),  # noqa: SIM115
                           item_show_func=lambda _: progress.line()) as bar:
        ms.tune.tune_tasks(
            tasks=contexts, task_weights=weights, work_dir=str(database_dir), max_trials_global=trials,
            num_trials_per_iter=min(DEFAULT_TRIALS_PER_ITER, max(trials // len(pending), 4)),
            builder=InProcessBuilder(), runner="local", database=database,
            measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"),
                               _progress_callback(progress, bar)])
    return database, TuningReport(len(tasks), len(pending), progress.done, time.perf_counter() - start)
