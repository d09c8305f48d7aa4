"""Tuning in rounds through files: build candidates here, measure them wherever the runtime runs.

MetaSchedule measures each candidate on the target through a local runner or an RPC server, while the
search runs. Many GPU machines allow neither: batch machines with no network and no TVM compiler,
air-gapped servers, boards where only a runtime fits. Here the search and the measurement are split:

    cnndsl tune SPEC --target h200 --rounds-via DIR            # round 1: DIR/round-0001/ (a bundle)
    cnndsl measure DIR/round-0001 -o results.json              # on the GPU machine: TVM's runtime, numpy
    cnndsl tune SPEC --target h200 --rounds-via DIR --ingest results.json   # records in; round 2 out

A round is a self-contained bundle: every candidate compiled for the target (CUDA kernels as cubins
compiled here, never source), a manifest with the target, each candidate's task, workload hash, argument
shapes and file, and the sha256 of every file; `cnndsl.measure` loads it with the runtime alone. Ingesting
commits each measured candidate to the tuning database as a MetaSchedule record, exactly as a live run
would, so `cnndsl compile --tune-db` uses them like any other.

Each round starts from the database (`DIR/state.json` records only which round is out), so a search
resumed days later continues where it stopped: the cost model (XGBoost on MetaSchedule's per-store
features) is trained on every past record of the tasks, the evolutionary search draws part of its first
population from the best measured schedules, and a candidate already measured (the same scheduled
module, by structural hash) is never proposed again: MetaSchedule's search does not skip those by itself
(its `measured_workloads_` set starts empty in every run). A task with no record yet is sampled at random
from its design space, which is what an untrained cost model would choose, at a tenth of the cost.

How a round's candidates are shared among the tasks (the task scheduler of Ansor and MetaSchedule, for
rounds): each task first gets `floor` candidates; the rest goes by each task's share of the network's
estimated time (its best measured latency times how often the network runs it), tasks not yet measured
counting as the slowest, so the heavy kernels get most of the search.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tvm
from tvm.s_tir import meta_schedule as ms
from tvm_ffi import structural_hash

from ...diagnostics import Option, UsageError
from ...files import atomic_directory
from ...measure import RESULTS_FORMAT, ROUND_FORMAT, ROUND_MANIFEST, ROUNDS_VERSION, read_json_file
from ...runtime import ArtifactError, file_sha256
from .cuda import compile_kernel_groups, nvcc_available, source_sha256
from .pipeline import default_gpu_schedules, fuse
from .records import measured_secs
from .tune import RECORDS, WORKLOADS, database_lock, open_database

STATE = "state.json"
DEFAULT_ROUND_CANDIDATES = 500
DEFAULT_BUNDLE_LIMIT_MIB = 48.0  # the GPU machines take 64 MiB with the repository (about 10 MiB)
FLOOR_PER_TASK = 4
FAILED_SECS = 1e10  # MetaSchedule's run time for a candidate that did not run


def round_name(number: int) -> str:
    return f"round-{number:04d}"


@dataclass
class RoundsState:
    """What DIR/state.json keeps between rounds: which network, target and options the rounds tune (a
    round ingested under other ones would file its records under the wrong workloads) and each round's
    fate. The records themselves live in the tuning database."""

    network: str
    graph_sha256: str
    target: str
    batch: int
    layout: str
    database: str
    rounds: list[dict[str, Any]] = field(default_factory=list)

    @staticmethod
    def read(directory: Path) -> RoundsState | None:
        path = directory / STATE
        if not path.exists():
            return None
        try:
            return RoundsState(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{path} is not a cnndsl rounds state ({exc}); remove {directory} to start again") from exc

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / (STATE + ".writing")
        temporary.write_text(json.dumps(asdict(self), indent=1) + "\n")
        temporary.replace(directory / STATE)

    def check_matches(self, other: RoundsState, directory: Path) -> None:
        for key in ("graph_sha256", "target", "batch", "layout"):
            if getattr(self, key) != getattr(other, key):
                raise UsageError(f"{directory} holds rounds of {self.network} for another {key.replace('_', ' ')} "
                                 f"({getattr(self, key)!r}; now {getattr(other, key)!r}): give another rounds "
                                 f"directory, or the same spec and options as round 1", option=Option.ROUNDS_DIRECTORY)


@dataclass
class Task:
    name: str
    weight: float
    module: tvm.IRModule
    workload: ms.database.Workload
    best_secs: float = math.inf  # the best measured mean run time
    baseline_secs: float | None = None  # the default schedule's (DLight's on GPUs), once measured
    measured: set[int] = field(default_factory=set)  # structural hashes of every scheduled module measured
    records: list[ms.database.TuningRecord] = field(default_factory=list)


@dataclass
class RoundReport:
    round: int
    candidates: int
    tasks: int
    seconds_search: float
    seconds_build: float
    seconds_compile: float
    failed_builds: int
    bundle: Path
    archive_mib: float
    baselines: int = 0  # of the candidates, the default schedules of tasks not yet compared with them
    ingested: int = 0  # records committed from the previous round's results
    estimate_ms: float | None = None  # the network's time from the best records so far (every task measured)

    def summary(self) -> str:
        total = self.seconds_search + self.seconds_build + self.seconds_compile
        rate = self.candidates / total * 60 if total else 0.0
        ingested = f"ingested {self.ingested} record(s); " if self.ingested else ""
        estimate = f"network estimate {self.estimate_ms:.4g} ms; " if self.estimate_ms is not None else ""
        baselines = f" (with {self.baselines} default schedules to compare)" if self.baselines else ""
        return (f"{ingested}{estimate}round {self.round}: {self.candidates} candidates{baselines} for {self.tasks} "
                f"tasks in {self.bundle} ({self.archive_mib:.1f} MiB packed); search {self.seconds_search:.0f} s, "
                f"build {self.seconds_build:.0f} s, kernels {self.seconds_compile:.0f} s ({rate:.0f} a minute"
                + (f", {self.failed_builds} failed to build" if self.failed_builds else "") + ")")


def next_round(module: tvm.IRModule, target: tvm.target.Target, state: RoundsState, directory: Path,
               candidates: int = DEFAULT_ROUND_CANDIDATES, ingest: Path | None = None, seed: int = 0,
               bundle_limit_mib: float = DEFAULT_BUNDLE_LIMIT_MIB,
               log: Callable[[str], None] | None = None) -> RoundReport:
    """Ingest the last round's results (if given), then write the next round's bundle in `directory`."""
    database_dir = Path(state.database)
    with database_lock(database_dir):
        previous = RoundsState.read(directory)
        if previous is not None:
            previous.check_matches(state, directory)
            state = previous
        database = open_database(database_dir)
        pending = state.rounds[-1] if state.rounds and not state.rounds[-1].get("ingested") else None
        if pending is not None and ingest is None:
            raise UsageError(f"{round_name(pending['round'])} in {directory} is waiting for its measurements: run "
                             f"`cnndsl measure {directory / round_name(pending['round'])} -o results.json` where the "
                             f"target is, then ingest results.json here", option=Option.INGEST)
        if ingest is not None and pending is None:
            raise UsageError(f"the results {ingest}: no round of {directory} is waiting for results "
                             f"(the last one was ingested, or none was written)", option=Option.INGEST)
        tasks = _tasks(module, target, database)
        ingested = 0
        if pending is not None and ingest is not None:
            ingested = ingest_results(ingest, directory / round_name(pending["round"]), tasks, database, target,
                                      database_dir)
            pending["ingested"], pending["measured"] = True, ingested
            state.write(directory)
        _attach_records(tasks, database, target, read_baselines(database_dir))  # the new records included
        number = (state.rounds[-1]["round"] + 1) if state.rounds else 1
        report = _write_round(tasks, target, directory, number, candidates, seed + number, bundle_limit_mib, log)
        report.ingested = ingested
        measured = [task for task in tasks if math.isfinite(task.best_secs)]
        if len(measured) == len(tasks):
            report.estimate_ms = round(1e3 * sum(t.best_secs * t.weight for t in tasks), 4)
        state.rounds.append({"round": number, "candidates": report.candidates, "ingested": False,
                             "written": time.strftime("%Y-%m-%dT%H:%M:%S")})
        state.write(directory)
        return report


def _tasks(module: tvm.IRModule, target: tvm.target.Target, database: ms.database.Database) -> list[Task]:
    """The network's tuning tasks, their workloads committed to the database (records attached later)."""
    extracted = ms.relax_integration.extract_tasks(fuse(module, target), target)
    return [Task(item.task_name, float(item.weight), item.dispatched[0], database.commit_workload(item.dispatched[0]))
            for item in extracted]


def _attach_records(tasks: list[Task], database: ms.database.Database, target: tvm.target.Target,
                    baselines: dict[str, float]) -> None:
    """Each task's records for `target`'s kind, best time, measured schedules (each record's trace replayed
    once) and baseline."""
    by_workload: dict[int, list[ms.database.TuningRecord]] = {}
    for record in database.get_all_tuning_records():
        if record.target is None or str(record.target.kind.name) == target.kind.name:
            by_workload.setdefault(structural_hash(record.workload.mod), []).append(record)
    for task in tasks:
        key = structural_hash(task.module)
        task.baseline_secs = baselines.get(str(key))
        task.records = by_workload.get(key, [])
        task.best_secs = min((_mean_secs(record) for record in task.records), default=math.inf)
        task.measured = {structural_hash(record.as_measure_candidate().sch.mod) for record in task.records}


def _mean_secs(record: ms.database.TuningRecord) -> float:
    """records.measured_secs, with a record that did not measure as infinitely slow (for comparisons)."""
    secs = measured_secs(record)
    return math.inf if secs is None else secs


def share_candidates(tasks: list[Task], total: int, floor: int = FLOOR_PER_TASK) -> list[int]:
    """Candidates per task for one round (module docstring): a floor each, the rest by estimated time."""
    if not tasks or total <= 0:
        return [0] * len(tasks)
    base = min(floor, total // len(tasks))
    shares = [base] * len(tasks)
    measured = [t.best_secs * t.weight for t in tasks if math.isfinite(t.best_secs)]
    slowest = max(measured, default=1.0)
    times = [t.best_secs * t.weight if math.isfinite(t.best_secs) else slowest for t in tasks]
    left = total - base * len(tasks)
    whole = sum(times)
    exact = [left * time / whole for time in times]
    for i, value in enumerate(exact):
        shares[i] += int(value)
    remainder = total - sum(shares)
    for i in sorted(range(len(tasks)), key=lambda i: exact[i] - int(exact[i]), reverse=True)[:remainder]:
        shares[i] += 1
    return shares


def _cost_model(tasks: list[Task], target: tvm.target.Target) -> ms.cost_model.CostModel:
    """XGBoost on MetaSchedule's per-store features, trained on every measured record of the tasks."""
    model = ms.cost_model.XGBModel(extractor=ms.feature_extractor.PerStoreFeature(), adaptive_training=False,
                                   num_tuning_cores=os.cpu_count() or 1)
    for task in tasks:
        valid = [r for r in task.records if math.isfinite(_mean_secs(r))]
        if not valid:
            continue
        context = ms.TuneContext(task.module, target=target, task_name=task.name)
        model.update(context, [r.as_measure_candidate() for r in valid],
                     [ms.runner.RunnerResult([float(s) for s in r.run_secs or []], None) for r in valid])
    return model


def propose(task: Task, target: tvm.target.Target, count: int, seed: int,
            cost_model: ms.cost_model.CostModel | None, database: ms.database.Database) -> list[Any]:
    """Up to `count` new candidates (MeasureCandidates) for `task`: evolutionary search guided by the cost
    model once the task has records, random samples of its design space before; none already measured."""
    if count <= 0:
        return []
    trained = cost_model is not None and any(math.isfinite(_mean_secs(r)) for r in task.records)
    strategy = ms.search_strategy.EvolutionarySearch(population_size=256) if trained else \
        ms.search_strategy.ReplayTrace()
    context = ms.TuneContext(task.module, target=target, space_generator="post-order-apply",
                             search_strategy=strategy, task_name=task.name, rand_state=seed,
                             num_threads=os.cpu_count() or 1)
    spaces = context.generate_design_space()
    chosen: list[Any] = []
    seen = set(task.measured)
    for attempt in range(3):  # a batch may repeat measured candidates: ask again, a little more each time
        want = count - len(chosen)
        if want <= 0:
            break
        context.pre_tuning(max_trials=2 * want * (attempt + 1), num_trials_per_iter=2 * want * (attempt + 1),
                           design_spaces=spaces, database=database,
                           cost_model=cost_model if trained else None)
        workload = ms.database.Workload(task.module)
        for candidate in context.generate_measure_candidates() or []:
            # keyed as a record of it will be (its trace replayed on the task), not by the live schedule's
            # module, which can differ from the replay: a repeat keyed the other way slipped through once
            replayed = ms.database.TuningRecord(candidate.sch.trace, workload).as_measure_candidate()
            key = structural_hash(replayed.sch.mod)
            if key not in seen and len(chosen) < count:
                seen.add(key)
                chosen.append(candidate)
        context.post_tuning()
    return chosen


def _named(candidate: Any, name: str) -> tvm.IRModule:
    """The candidate's module with its function (and so its kernels: `NAME_kernel`) renamed, so a round's
    kernels can be compiled together and never clash."""
    function = candidate.sch.mod["main"].with_attr("global_symbol", name)
    return tvm.IRModule({name: function})


def _build_candidate(module: tvm.IRModule, target: tvm.target.Target, path: str) -> str | None:
    """Runs in a build worker: compile, export the library, return its CUDA source (None on CPUs). As
    MetaSchedule's own builder does, the weights' layout rewrite is dropped: a candidate is timed on
    weights already in the layout it reads (its arguments say so), as the compiled network runs it. The
    tensor intrinsics are not imported (a minute per process here; fp32 SIMT and CPU schedules use none):
    a candidate that tensorizes fails to build and counts as failed."""
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    library = tvm.compile(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(module), target=target)
    library.export_library(path)
    for imported in library.mod.imports:
        if imported.kind == "cuda":
            return str(imported.inspect_source("cuda"))
    return None


def _build_all(modules: list[tvm.IRModule], target: tvm.target.Target, paths: list[Path],
               timeout: float = 120.0) -> list[tuple[str | None, str | None]]:
    """(CUDA source or None, error or None) for each module, built on every core."""
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    pool = PopenPoolExecutor(max_workers=os.cpu_count() or 1, timeout=timeout)
    results: list[tuple[str | None, str | None]] = []
    try:
        jobs = [(module, target, str(path)) for module, path in zip(modules, paths, strict=True)]
        for outcome in pool.map_with_error_catching(lambda job: _build_candidate(*job), jobs):
            if outcome.status == StatusKind.COMPLETE:
                results.append((outcome.value, None))
            elif outcome.status == StatusKind.TIMEOUT:
                results.append((None, f"build timed out after {timeout:.0f} s"))
            else:
                results.append((None, f"build failed: {str(outcome.value).strip().splitlines()[-1][:300]}"))
    finally:
        pool.shutdown()
    return results


def _write_round(tasks: list[Task], target: tvm.target.Target, directory: Path, number: int, total: int, seed: int,
                 bundle_limit_mib: float, log: Callable[[str], None] | None) -> RoundReport:
    say = log or (lambda line: None)
    started = time.perf_counter()
    shares = share_candidates(tasks, total)
    trained = [t for t in tasks if t.records]
    database = ms.database.MemoryDatabase()
    for task in trained:  # the evolutionary search seeds its population from the best measured schedules
        committed = database.commit_workload(task.module)
        for record in task.records:
            if math.isfinite(_mean_secs(record)):
                database.commit_tuning_record(ms.database.TuningRecord(
                    record.trace, committed, record.run_secs, record.target, record.args_info))
    cost_model = _cost_model(tasks, target) if trained else None
    proposed: list[tuple[int, Any]] = []
    for index, (task, share) in enumerate(zip(tasks, shares, strict=True)):
        found = propose(task, target, share, seed * 1000 + index, cost_model, database)
        proposed += [(index, candidate) for candidate in found]
        say(f"round {number}: task {index + 1}/{len(tasks)} {task.name}: {len(found)} candidate(s)"
            + (f", best so far {task.best_secs * 1e6:.1f} us" if math.isfinite(task.best_secs) else ""))
    searched = time.perf_counter()
    bundle = directory / round_name(number)
    baselines = [i for i, task in enumerate(tasks) if task.baseline_secs is None]
    with atomic_directory(bundle, "round bundle", lambda path: (path / ROUND_MANIFEST).exists()) as staging:
        names = [f"c{i:05d}" for i in range(len(proposed))] + [f"b{i:04d}" for i in baselines]
        libraries = [staging / f"{name}.so" for name in names]
        modules = [_named(c, n) for (_, c), n in zip(proposed, names[:len(proposed)], strict=True)]
        modules += [default_schedule(tasks[i].module, target, f"b{i:04d}") for i in baselines]
        built = _build_all(modules, target, libraries)
        compiled_at = time.perf_counter()
        kernels = _compile_kernels(built, target, staging)
        entries, failed = [], 0
        jobs: list[tuple[int, Any, int | None]] = [(task_index, candidate.args_info, i)
                                                   for i, (task_index, candidate) in enumerate(proposed)]
        jobs += [(i, ms.arg_info.ArgInfo.from_prim_func(tasks[i].module["main"]), None) for i in baselines]
        for i, ((task_index, args_info, record), name) in enumerate(zip(jobs, names, strict=True)):
            source, error = built[i]
            cubin = kernels.get(i)
            if error is None and target.kind.name == "cuda" and cubin is None:
                error = "nvcc failed on this kernel"
            if error is not None:
                failed += 1
                libraries[i].unlink(missing_ok=True)
            entries.append({"id": name, "task": tasks[task_index].name, "task_index": task_index,
                            "workload": str(structural_hash(tasks[task_index].module)),
                            "library": None if error else libraries[i].name,
                            "kernels": cubin[0] if error is None and cubin else None,
                            "source_sha256": source_sha256(source) if source and not error else None,
                            "args": [list(arg.as_json()) for arg in args_info],
                            "build_error": error, "record": record, "baseline": record is None})
        manifest = {"format": ROUND_FORMAT, "version": ROUNDS_VERSION, "round": number, "target": str(target),
                    "target_kind": target.kind.name, "device": "cuda" if target.kind.name == "cuda" else "cpu",
                    "tvm": tvm.__version__, "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "candidates": entries,
                    "files": {path.name: file_sha256(path) for path in sorted(staging.iterdir()) if path.is_file()}}
        (staging / ROUND_MANIFEST).write_text(json.dumps(manifest, indent=None, separators=(",", ":")) + "\n")
    _write_candidate_records(proposed, tasks, target, records_path(bundle))
    finished = time.perf_counter()
    archive = pack(bundle, bundle_limit_mib)
    return RoundReport(number, len(names) - failed, len(tasks), searched - started, compiled_at - searched,
                       finished - compiled_at, failed, bundle, archive.stat().st_size / 2**20,
                       baselines=len(baselines))


BASELINES = "baselines.json"


def default_schedule(module: tvm.IRModule, target: tvm.target.Target, name: str) -> tvm.IRModule:
    """The task's kernel as an untuned compile builds it, named `name`: DLight's default schedule on GPUs
    (compile_program's), the plain loops on CPUs. Measured beside a task's candidates, it tells whether
    tuning beat what the network would run anyway (a round of random samples often does not, on some
    kernels), so a compile applies only records that win (`winning_records`)."""
    function = module["main"].with_attr("global_symbol", name)
    named = tvm.IRModule({name: function})
    if target.kind.name != "cuda":
        return named
    with target:
        return default_gpu_schedules()(named)


def read_baselines(database_dir: Path) -> dict[str, float]:
    """Workload hash -> the default schedule's measured run time (seconds), kept beside the database."""
    try:
        data = json.loads((database_dir / BASELINES).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)} if isinstance(data, dict) else {}


def write_baselines(database_dir: Path, baselines: dict[str, float]) -> None:
    temporary = database_dir / (BASELINES + ".writing")
    temporary.write_text(json.dumps(dict(sorted(baselines.items())), indent=1) + "\n")
    temporary.replace(database_dir / BASELINES)


def winning_records(database: ms.database.Database, baselines: dict[str, float], target: tvm.target.Target,
                    compared_only: bool = False) -> tuple[ms.database.Database, int]:
    """The best record of each workload measured on `target`'s kind, left out where the default schedule
    was measured faster (the kernel then keeps it); the count left out. A workload without a measured
    baseline keeps its best, unless `compared_only` (what cnndsl ships: only records known to win)."""
    kept = ms.database.MemoryDatabase()
    best: dict[int, ms.database.TuningRecord] = {}
    for record in database.get_all_tuning_records():
        if record.target is not None and record.target.kind.name != target.kind.name:
            continue
        key = structural_hash(record.workload.mod)
        if math.isfinite(_mean_secs(record)) and (key not in best or _mean_secs(record) < _mean_secs(best[key])):
            best[key] = record
    dropped = 0
    for key, record in best.items():
        baseline = baselines.get(str(key))
        if (baseline is None and compared_only) or (baseline is not None and baseline <= _mean_secs(record)):
            dropped += 1
            continue
        workload = kept.commit_workload(record.workload.mod)
        kept.commit_tuning_record(ms.database.TuningRecord(record.trace, workload, record.run_secs, record.target,
                                                           record.args_info))
    return kept, dropped


def records_path(bundle: Path) -> Path:
    """Where the build side keeps a round's candidates as MetaSchedule records without run times (beside
    the bundle: the measuring side needs none of it)."""
    return bundle.with_name(bundle.name + ".records")


def _write_candidate_records(proposed: list[tuple[int, Any]], tasks: list[Task], target: tvm.target.Target,
                             path: Path) -> None:
    """The candidates in MetaSchedule's own JSON database, in order: its C++ writer serialises every trace
    (a trace can hold objects, such as index maps, that the Python side of its JSON cannot)."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    database = ms.database.JSONDatabase(path_workload=str(path / WORKLOADS), path_tuning_record=str(path / RECORDS),
                                        allow_missing=True)
    for task_index, candidate in proposed:
        workload = database.commit_workload(tasks[task_index].module)
        database.commit_tuning_record(ms.database.TuningRecord(candidate.sch.trace, workload, None, target,
                                                               candidate.args_info))


def _compile_kernels(built: list[tuple[str | None, str | None]], target: tvm.target.Target,
                     out: Path) -> dict[int, tuple[str, str]]:
    """Candidate index -> (cubin file, its source's sha256) for CUDA targets; {} on CPUs."""
    indices = [i for i, (source, error) in enumerate(built) if source is not None and error is None]
    if not indices:
        return {}
    if not nvcc_available():
        raise UsageError("a CUDA round needs nvcc here to compile its kernels (the measuring machine has no "
                         "compiler): install the CUDA toolkit")
    arch = str(target.attrs.get("arch", "sm_80"))
    sources = [str(built[i][0]) for i in indices]
    result: dict[int, tuple[str, str]] = {}
    for number, group in enumerate(compile_kernel_groups(sources, arch)):
        if group.binary is None:
            continue
        name = f"k{number:04d}.cubin"
        (out / name).write_bytes(group.binary)
        for member in group.members:
            result[indices[member]] = (name, source_sha256(sources[member]))
    return result


def pack(bundle: Path, limit_mib: float) -> Path:
    """The bundle as one .tar.xz beside it (what travels), refused when larger than `limit_mib`."""
    archive = bundle.with_name(bundle.name + ".tar.xz")
    temporary = archive.with_name(archive.name + ".writing")
    with tarfile.open(temporary, "w:xz", preset=6) as tar:
        tar.add(bundle, arcname=bundle.name)
    size = temporary.stat().st_size / 2**20
    if size > limit_mib:
        temporary.unlink()
        raise UsageError(f"round bundle {archive.name} would be {size:.1f} MiB packed, over the limit of "
                         f"{limit_mib:g} MiB: ask for fewer candidates, or allow more", option=Option.BUNDLE_LIMIT)
    temporary.replace(archive)
    return archive


def round_manifest_text(bundle: Path) -> str:
    """The round's manifest, from its directory or, where only the packed bundle is kept (a repository
    keeps the .tar.xz that travels, not the libraries twice), from inside `bundle`.tar.xz."""
    if (bundle / ROUND_MANIFEST).is_file():
        return (bundle / ROUND_MANIFEST).read_text(encoding="utf-8")
    archive = bundle.with_name(bundle.name + ".tar.xz")
    try:
        with tarfile.open(archive, "r:xz") as tar:
            member = tar.extractfile(f"{bundle.name}/{ROUND_MANIFEST}")
            if member is None:
                raise KeyError(ROUND_MANIFEST)
            return member.read().decode("utf-8")
    except (OSError, KeyError, tarfile.TarError) as exc:
        raise ArtifactError(f"{bundle} has no readable round manifest (neither the directory nor "
                            f"{archive.name}): {exc}") from exc


def ingest_results(results_path: Path, bundle: Path, tasks: list[Task], database: ms.database.Database,
                   target: tvm.target.Target, database_dir: Path | None = None) -> int:
    """Commit the measured candidates of `results_path` (cnndsl measure's output for `bundle`) to the
    database as MetaSchedule records; a candidate that failed to build or run is committed as failed
    (MetaSchedule's 1e10 s), so it is never proposed again. Returns the records committed."""
    try:
        manifest_text = round_manifest_text(bundle)
        manifest = json.loads(manifest_text)
        results = read_json_file(results_path, "measurement results")
    except (ArtifactError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    if not isinstance(results, dict) or results.get("format") != RESULTS_FORMAT:
        raise UsageError(f"{results_path} is not the output of `cnndsl measure` (format {RESULTS_FORMAT!r})")
    if results.get("round") != manifest["round"] or results.get("manifest_sha256") != hashlib.sha256(
            manifest_text.encode()).hexdigest():
        raise UsageError(f"{results_path} holds the measurements of another bundle (round {results.get('round')!r}); "
                         f"this one is {round_name(manifest['round'])} of {bundle.parent}")
    lines = (records_path(bundle) / RECORDS).read_text().splitlines() if (records_path(bundle) / RECORDS).exists() \
        else []
    searched = [entry for entry in manifest["candidates"] if not entry.get("baseline")]
    if len(lines) != len(searched):
        raise UsageError(f"{records_path(bundle)} does not hold the {len(searched)} candidates of "
                         f"{bundle}: the round's build-side records are missing or from another build")
    measured = results.get("results") or {}
    by_workload = {str(structural_hash(task.module)): task for task in tasks}
    measured_baselines: dict[str, float] = {}
    committed = 0
    for entry in manifest["candidates"]:
        outcome = measured.get(entry["id"])
        if entry["build_error"] is None and not isinstance(outcome, dict):
            continue  # not measured (the budget ran out): it may be proposed again
        secs = outcome.get("run_secs") if isinstance(outcome, dict) else None
        valid = isinstance(secs, list) and bool(secs) and all(isinstance(s, int | float) and s > 0 for s in secs)
        task = by_workload.get(entry["workload"])
        if task is None:
            raise UsageError(f"candidate {entry['id']} of {bundle} tunes a kernel this network no longer has: the "
                             "spec or its options changed since the round was written")
        if entry.get("baseline"):
            if valid and isinstance(secs, list) and database_dir is not None:
                measured_baselines[entry["workload"]] = sum(secs) / len(secs)
            continue
        # a line is [workload index, record]; a record is [trace, run_secs, target, args_info]
        record = json.loads(lines[entry["record"]])[1]
        record[1] = [float(s) for s in secs] if valid and isinstance(secs, list) else [FAILED_SECS]
        database.commit_tuning_record(ms.database.TuningRecord.from_json(record, task.workload))
        committed += 1
    if measured_baselines and database_dir is not None:
        write_baselines(database_dir, {**read_baselines(database_dir), **measured_baselines})
    return committed
