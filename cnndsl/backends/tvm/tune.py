"""MetaSchedule tuning with a persistent database and a progress bar.

Two facts of these machines shape it. MetaSchedule's default LocalBuilder starts fresh worker
processes for every batch, and each first imports `tvm.s_tir.tensor_intrin` (~36 s here) inside the
build, past its 30 s timeout, so every trial failed: `WarmWorkerBuilder` keeps its workers for the
whole run and imports the intrinsics when a worker starts, outside any build's timeout. And a second
compile of the same workloads must tune nothing: tasks whose workload already has records for the
target in the database are skipped before the task scheduler starts.

Two more shape how a long run behaves. MetaSchedule's gradient scheduler collects a task's
measurements only when it picks that task again, and not at all before every task has had a first
round: in a 2,000-trial ResNet-18 run the record file was still empty after 16 minutes, so a killed run
lost everything, and the next task's candidates were built while the last one's were being timed on the
same two cores. `EagerGradientScheduler` collects each round as soon as it is sent (records reach the
database round by round, timings run on an otherwise idle machine) and then picks the next task by the
same gradient rule. And a record file cut mid-line by a killed process is repaired when opened
(`repair_database`), not left to crash every later compile.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from ...diagnostics import Option, UsageError
from .pipeline import fuse
from .remote import Tracker

# Trials per task per round. The task scheduler first gives every task one round, then spends the
# rest where latency falls fastest: ResNet-18 has ~20 tasks, and at 64 the first round alone took
# 1,280 of a 2,000-trial budget, leaving little for its heavy convolutions.
DEFAULT_TRIALS_PER_ITER = 32
# Fewer candidates per round than this and the cost model has nothing to rank.
MIN_TRIALS_PER_ITER = 4


def default_database_dir() -> Path:
    """$CNNDSL_TUNE_DB, else the user's cache directory (XDG): ~/.cache/cnndsl/tuning."""
    if os.environ.get("CNNDSL_TUNE_DB"):
        return Path(os.environ["CNNDSL_TUNE_DB"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "cnndsl" / "tuning"


WORKLOADS, RECORDS = "database_workload.json", "database_tuning_record.json"


LOCK = ".cnndsl-lock"
_HELD: set[Path] = set()  # databases this process has locked (flock is per open file, not per process)


@contextmanager
def database_lock(directory: Path) -> Iterator[None]:
    """Hold the database for this process: two tuning runs appending to one database at once would
    interleave their records mid-line, and a repair would rewrite the file under a writer. A second run
    fails at once with a clear message rather than waiting behind a 40-minute tuning."""
    key = directory.resolve()
    if key in _HELD:
        yield
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = (directory / LOCK).open("a")
    except OSError as exc:
        raise UsageError(f"tuning database {directory} cannot be opened: {exc.strerror}") from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise UsageError(f"tuning database {directory} is in use by another cnndsl run (tune, compile or bench); "
                             "wait for it to finish, or give this one another database",
                             option=Option.TUNE_DB) from exc
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)


def open_database(directory: Path) -> ms.database.JSONDatabase:
    with database_lock(directory):
        repair_database(directory)
        return ms.database.JSONDatabase(path_workload=str(directory / WORKLOADS),
                                        path_tuning_record=str(directory / RECORDS), allow_missing=True)


def repair_database(directory: Path) -> list[str]:
    """Drop the lines of a database that TVM cannot load (a tail cut by a killed run, a record of a
    workload that was never written), rewriting the file; a warning says what went. Returns the warnings."""
    said: list[str] = []
    workloads = _valid_lines(directory / WORKLOADS, lambda item: isinstance(item, list) and len(item) == 2, said)
    count = len(workloads) if workloads is not None else 0
    _valid_lines(directory / RECORDS, lambda item: isinstance(item, list) and len(item) == 2
                 and isinstance(item[0], int) and 0 <= item[0] < count, said)
    for message in said:
        warnings.warn(message, stacklevel=3)
    return said


def _valid_lines(path: Path, valid: Callable[[object], bool], said: list[str]) -> list[str] | None:
    if not path.exists():
        return None
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    kept = [line for line in lines if line.strip() and _parses_to(line, valid)]
    dropped = sum(1 for line in lines if line.strip()) - len(kept)
    if dropped or (text and not text.endswith("\n")):
        if dropped:
            said.append(f"tuning database {path}: ignored {dropped} line(s) of {len(lines)} it cannot load "
                        f"(a run killed while writing?); the rest loads")
        temporary = path.with_suffix(".repairing")
        temporary.write_text("".join(line + "\n" for line in kept))
        temporary.replace(path)
    return kept


def _parses_to(line: str, valid: Callable[[object], bool]) -> bool:
    try:
        return valid(json.loads(line))
    except ValueError:
        return False


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
        self.workers = max_workers or os.cpu_count() or 1
        self.pool = PopenPoolExecutor(max_workers=self.workers, timeout=timeout_sec,
                                      initializer=_import_tensor_intrinsics)
        self.built = 0  # candidates built, and the wall time their batches took (for the timing summary)
        self.seconds = 0.0

    def build(self, build_inputs: list[ms.builder.BuilderInput]) -> list[ms.builder.BuilderResult]:
        from tvm.s_tir.meta_schedule.builder.local_builder import _serialize_params, _worker_func
        from tvm.support.popen_pool import StatusKind

        started = time.perf_counter()
        jobs = [(None, None, item.mod, item.target, _serialize_params(item.params)) for item in build_inputs]
        results = []
        for outcome in self.pool.map_with_error_catching(lambda job: _worker_func(*job), jobs):
            if outcome.status == StatusKind.COMPLETE:
                results.append(ms.builder.BuilderResult(outcome.value, None))
            elif outcome.status == StatusKind.TIMEOUT:
                results.append(ms.builder.BuilderResult(None, f"build timed out after {self.timeout_sec:.0f} s"))
            else:
                results.append(ms.builder.BuilderResult(None, f"build failed: {outcome.value}"))
        self.built += len(build_inputs)
        self.seconds += time.perf_counter() - started
        return results

    def shutdown(self) -> None:
        self.pool.shutdown()


@dataclass
class TuningProgress:
    """What a tuning run reports after every round: trials done, best latency per task, the network's
    estimated latency (each task's best times how often the network runs it) and the time left."""

    total: int
    names: list[str]
    weights: list[float]
    done: int = 0
    rounds: int = 0
    best_ms: dict[int, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def record(self, task_id: int, runner_results: list[ms.runner.RunnerResult]) -> None:
        for result in runner_results:
            if result.error_msg is None and result.run_secs:
                latency = 1e3 * sum(float(s) for s in result.run_secs) / len(result.run_secs)
                self.best_ms[task_id] = min(latency, self.best_ms.get(task_id, math.inf))
        self.done += len(runner_results)
        self.rounds += 1

    def seconds_left(self) -> float:
        elapsed = time.perf_counter() - self.started
        return elapsed / self.done * (self.total - self.done) if self.done else 0.0

    def estimate_ms(self) -> float:
        return sum(self.weights[i] * best for i, best in self.best_ms.items())

    def line(self, task_id: int) -> str:
        best = self.best_ms.get(task_id)
        missing = len(self.names) - len(self.best_ms)
        left = f", {missing} task(s) not measured yet" if missing else ""
        return (f"round {self.rounds}: {self.done}/{self.total} trials, {self.names[task_id]} best "
                f"{_latency(best) if best is not None else 'none valid'}; network estimate "
                f"{_latency(self.estimate_ms())}{left}; {_duration(time.perf_counter() - self.started)} elapsed, "
                f"about {_duration(self.seconds_left())} left")


def _latency(ms: float) -> str:
    return f"{ms * 1e3:.2f} us" if ms < 0.1 else f"{ms:.3f} ms"


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _progress_callback(progress: TuningProgress,
                       log: Callable[[str], None] | None) -> ms.measure_callback.PyMeasureCallback:
    @derived_object
    class Progress(ms.measure_callback.PyMeasureCallback):
        def apply(self, task_scheduler: object, task_id: int, measure_candidates: list[object],
                  builder_results: list[object], runner_results: list[ms.runner.RunnerResult]) -> None:
            progress.record(task_id, runner_results)
            if log is not None:
                log(progress.line(task_id))

    return Progress()


@derived_object
class EagerGradientScheduler(ms.task_scheduler.PyTaskScheduler):
    """MetaSchedule's gradient task scheduler (Zheng et al., Ansor, OSDI 2020: a round for every task,
    then the task whose weighted latency is falling fastest), except that each round's measurements are
    collected before the next task is picked: records reach the database as they are measured, and a
    round's timings never share the CPU with the next round's builds."""

    # Set by TVM's @derived_object: the C++ TaskScheduler this Python object backs (its tasks and methods).
    _outer: Callable[[], Any]

    def __init__(self, progress: TuningProgress, alpha: float = 0.2, window: int = 3) -> None:
        super().__init__()
        self.progress, self.alpha, self.window = progress, alpha, window
        self.history: dict[int, list[float]] = {}
        self.running: int | None = None
        self.next_first_round = 0

    def next_task_id(self) -> int:
        scheduler = self._outer()
        tasks = scheduler.tasks_
        if self.running is not None and not tasks[self.running].is_terminated:
            scheduler.join_running_task(self.running)  # measure callbacks run here: database, progress
            best = self.progress.best_ms.get(self.running, math.inf)
            self.history.setdefault(self.running, []).append(best)
        self.running = None
        alive = []
        for task_id in range(len(tasks)):
            scheduler.touch_task(task_id)
            if not tasks[task_id].is_terminated:
                alive.append(task_id)
        if not alive:
            return -1
        first_round = [task_id for task_id in alive if task_id >= self.next_first_round]
        if first_round:
            self.running = first_round[0]
            self.next_first_round = self.running + 1
        else:
            self.running = max(alive, key=lambda task_id: self._gradient(task_id, tasks[task_id].task_weight))
        return self.running

    def _gradient(self, task_id: int, weight: float) -> float:
        history = self.history.get(task_id) or [math.inf]
        best, n = history[-1], len(history)
        if math.isinf(best):
            return -1e9  # no valid candidate yet: another round elsewhere first
        backward = (history[n - 1 - self.window] - best) / self.window if n >= 1 + self.window else 0.0
        if math.isinf(backward):
            backward = 0.0
        return (self.alpha * backward + (1 - self.alpha) * best / n) * weight


TUNING_LOGGER = "tvm.s_tir.meta_schedule"


class _ConsoleWarnings(logging.Handler):
    """Warnings to whatever sys.stderr is when they are logged (a StreamHandler keeps the stream of the
    moment it was made, which a test runner or a notebook may have replaced and closed since)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 (logging's contract: a failed emit is reported, never raised)
            self.handleError(record)


@contextmanager
def tuning_logs(log_dir: Path, task_names: list[str]) -> Iterator[list[logging.Logger]]:
    """One logger per task, each writing to its own file in `log_dir`, and MetaSchedule's own logger writing
    to task_scheduler.log and its warnings to the console, all closed when the run ends. MetaSchedule's own
    set-up (in `extracted_tasks_to_tune_contexts`) calls `logging.config.dictConfig`, which closes every
    handler of the process: in a test session it closed absl's (imported with Keras), whose stream was
    pytest's capture, and pytest lost its output. A notebook's or a service's handlers deserve the same."""
    log_dir.mkdir(parents=True, exist_ok=True)
    width = len(str(max(len(task_names) - 1, 0)))
    formatter = logging.Formatter("%(asctime)s [%(levelname)s] %(message)s", "%Y-%m-%d %H:%M:%S")
    opened: list[tuple[logging.Logger, logging.Handler]] = []

    def attach(logger: logging.Logger, handler: logging.Handler, level: int) -> None:
        handler.setFormatter(formatter)
        handler.setLevel(level)
        logger.addHandler(handler)
        opened.append((logger, handler))

    def file_logger(name: str, filename: str) -> logging.Logger:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        attach(logger, logging.FileHandler(log_dir / filename, mode="a"), logging.DEBUG)
        return logger

    attach(file_logger(TUNING_LOGGER, "task_scheduler.log"), _ConsoleWarnings(), logging.WARNING)
    names = [f"task_{i:0{width}d}_{name[:100]}" for i, name in enumerate(task_names)]  # as MetaSchedule names them
    try:
        yield [file_logger(f"{TUNING_LOGGER}.{name}", f"{name}.log") for name in names]
    finally:
        for logger, handler in opened:
            logger.removeHandler(handler)
            handler.close()


def tune_contexts(tasks: list[ms.ExtractedTask], loggers: list[logging.Logger], seed: int) -> list[ms.TuneContext]:
    """MetaSchedule's `extracted_tasks_to_tune_contexts` (the same search space, strategy and seeds) with
    loggers of our making (`tuning_logs`)."""
    seeds = ms.utils.fork_seed(seed, n=len(tasks))
    return [ms.TuneContext(mod=task.dispatched[0], target=task.target, space_generator="post-order-apply",
                           search_strategy="evolutionary", task_name=task.task_name, logger=logger,
                           rand_state=rand_state, num_threads="physical").clone()
            for task, logger, rand_state in zip(tasks, loggers, seeds, strict=True)]


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


@dataclass
class TuningReport:
    tasks: int
    tuned_now: int
    trials: int
    seconds: float
    # tasks still without a record after this run (the budget ran out before their first round, or
    # every candidate failed): they run with default schedules and the next compile tunes them
    left_untuned: int = 0
    # MetaSchedule's estimate of the network's latency from this run's best kernels (every task tuned now)
    estimate_ms: float | None = None

    def summary(self) -> str:
        if self.trials == 0 and not self.left_untuned:
            return f"all {self.tasks} tasks already in the tuning database"
        return f"tuned {self.tuned_now} of {self.tasks} tasks with {self.trials} trials in {self.seconds:.0f} s"

    def shortfall(self) -> str | None:
        """A warning when the budget left tasks untuned, with the --trials that gives each a round."""
        if not self.left_untuned:
            return None
        enough = (self.tuned_now + self.left_untuned) * MIN_TRIALS_PER_ITER
        return (f"{self.left_untuned} of {self.tasks} tasks got no tuning record within {self.trials} trials "
                f"and keep default schedules; {enough} trials or more give every task a round "
                f"(the next compile with this database tunes only those)")


def tune(module: tvm.IRModule, target: tvm.target.Target, database_dir: Path, trials: int, seed: int = 0,
         trials_per_task: int | None = None, log: Callable[[str], None] | None = None,
         tracker: Tracker | None = None, builders: int | None = None) -> tuple[ms.database.Database, TuningReport]:
    """Tune every task of `module` (a `pipeline.prepare`d module) not yet in the database, up to `trials`
    measurements in all and `trials_per_task` for one task, measured here or on the servers of a `tracker`'s
    key, built by `builders` local processes (default: one per core). `log` gets a line per round (the caller
    decides where progress goes). The database is locked for the run."""
    with database_lock(database_dir):
        return _tune(module, target, database_dir, trials, seed, trials_per_task, log, tracker, builders)


def _tune(module: tvm.IRModule, target: tvm.target.Target, database_dir: Path, trials: int, seed: int,
          trials_per_task: int | None, log: Callable[[str], None] | None, tracker: Tracker | None = None,
          builders: int | None = None) -> tuple[ms.database.Database, TuningReport]:
    database = open_database(database_dir)
    tasks = ms.relax_integration.extract_tasks(fuse(module, target), target)
    pending = untuned_tasks(tasks, database, target)
    start = time.perf_counter()
    if not pending or trials <= 0:  # nothing to measure: say what the database lacks
        return database, TuningReport(len(tasks), 0, 0, 0.0, left_untuned=len(pending))
    weights = [float(task.weight) for task in pending]
    per_iter = min(DEFAULT_TRIALS_PER_ITER, max(trials // len(pending), MIN_TRIALS_PER_ITER))
    if trials_per_task:
        per_iter = min(per_iter, trials_per_task)
    progress = TuningProgress(trials, [task.task_name for task in pending], weights)
    if log is not None:
        log(f"tuning {len(pending)} of {len(tasks)} tasks ({len(tasks) - len(pending)} already in {database_dir}), "
            f"{trials} trials, {per_iter} per round")
    runner: str | ms.runner.Runner = "local"
    tracker_servers = 0
    if tracker is not None:  # checked before the first build: an unreachable tracker or unknown key stops here
        state = tracker.check_servers()
        if log is not None:
            log(f"measuring through the RPC tracker at {tracker.address}: {state.describe(tracker.key)}")
        tracker_servers = state.queues[tracker.key].total
        runner = tracker.runner(workers=tracker_servers)
    builder = WarmWorkerBuilder(max_workers=builders)
    try:
        # MetaSchedule may stop early when every task's search space is exhausted.
        with tuning_logs(database_dir / "logs", [task.task_name for task in pending]) as loggers:
            ms.tune.tune_tasks(
                tasks=tune_contexts(pending, loggers, seed), task_weights=weights, work_dir=str(database_dir),
                max_trials_global=trials, max_trials_per_task=trials_per_task or trials, num_trials_per_iter=per_iter,
                builder=builder, runner=runner, database=database, task_scheduler=EagerGradientScheduler(progress),
                measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"),
                                   _progress_callback(progress, log)])
    finally:
        builder.shutdown()
    elapsed = time.perf_counter() - start
    if log is not None and builder.built:  # what docs/distributed-tuning.md's speed-up model is made of
        measuring = max(0.0, elapsed - builder.seconds)
        log(f"timing: built {builder.built} candidates in {builder.seconds:.0f} s on {builder.workers} worker(s) "
            f"({builder.seconds * builder.workers / builder.built:.2f} worker-s each); measuring and search took the "
            f"other {measuring:.0f} s ({measuring / builder.built:.2f} s per candidate"
            + (f" on {tracker_servers} server(s))" if tracker is not None else " here)"))
    if tracker is not None and log is not None:
        try:
            log(f"after tuning, the tracker says {tracker.state().describe(tracker.key)}")
        except UsageError as exc:  # the records are in; a tracker gone since is only worth a line
            log(f"after tuning: {exc}")
    left = len(untuned_tasks(pending, database, target))
    report = TuningReport(len(tasks), len(pending) - left, progress.done, time.perf_counter() - start,
                          left_untuned=left, estimate_ms=round(progress.estimate_ms(), 3) if not left else None)
    if shortfall := report.shortfall():
        warnings.warn(shortfall, stacklevel=2)
    return database, report
