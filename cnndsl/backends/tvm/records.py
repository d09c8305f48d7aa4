"""Tuning databases as a team shares them: what one holds (`cnndsl tune-db show`) and several pooled into
one (`cnndsl tune-db merge`), e.g. the databases of runs on different machines or trackers.

A database is MetaSchedule's JSON pair (workloads, tuning records). Merging re-commits every record of
every source into the output through MetaSchedule's own JSONDatabase, which keeps each workload once, so
a merged database is what one long run would have written; a record already in the output is skipped.
Records that did not measure (a failed build or run: MetaSchedule writes 1e10 s) are left out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tvm.s_tir import meta_schedule as ms
from tvm_ffi import structural_hash

from ...diagnostics import Option, UsageError
from .tune import RECORDS, WORKLOADS, database_lock, open_database


@dataclass(frozen=True)
class TaskSummary:
    name: str  # what the kernel computes: its blocks and buffer shapes (`conv1d_ncw+T_add (1x1x40, ...)`)
    target: str  # the target's kind and its distinguishing attributes
    records: int
    best_us: float  # the fastest measured candidate's mean run time


def _existing(directory: Path) -> Path:
    if not (directory / WORKLOADS).is_file() or not (directory / RECORDS).is_file():
        raise UsageError(f"{directory} is not a tuning database (no {WORKLOADS} and {RECORDS}); tuning into it "
                         "(cnndsl tune) creates one", option=Option.TUNE_DB)
    return directory


def measured_secs(record: ms.database.TuningRecord) -> float | None:
    """The record's mean run time in seconds, or None when it did not measure."""
    secs = [float(s) for s in (record.run_secs or [])]
    mean = sum(secs) / len(secs) if secs else math.inf
    return mean if math.isfinite(mean) and mean < 1e9 else None


def _task_name(record: ms.database.TuningRecord) -> str:
    """What the kernel computes, as its compute blocks and buffer shapes: `conv1d_ncw+T_add+compute
    (1x1x40, 15x1x3, 1x15x19)` (a workload keeps no task name; its function is `main`)."""
    script = str(record.workload.mod)  # TVMScript: read, not parsed (it is printed for people)
    blocks = [name for name in dict.fromkeys(re.findall(r'T\.sblock\("([^"]+)"\)', script)) if name != "root"]
    signature = next((line for line in script.splitlines() if line.lstrip().startswith("def ")), "")
    shapes = ["x".join(re.findall(r"\d+", dims.replace("T.int64", "")))
              for dims in re.findall(r'T\.Buffer\(\((.*?)\),\s*"', signature)]
    shown = "+".join(blocks[:4]) + ("+..." if len(blocks) > 4 else "")
    return f"{shown or 'main'} ({', '.join(shapes)})"


def _target_text(target: object) -> str:
    kind = getattr(getattr(target, "kind", None), "name", str(target))
    attrs = getattr(target, "attrs", {}) or {}
    shown = [f"{key}={attrs[key]}" for key in ("mtriple", "mcpu", "arch") if key in attrs and attrs[key]]
    return f"{kind} ({', '.join(shown)})" if shown else str(kind)


def summarize(directory: Path) -> list[TaskSummary]:
    """Each tuned task of the database: its target, how many measured records, the best run time."""
    database = open_database(_existing(directory))
    best: dict[tuple[int, str], tuple[str, int, float]] = {}  # by (workload, target)
    for record in database.get_all_tuning_records():
        seconds = measured_secs(record)
        if seconds is None:
            continue
        key = (structural_hash(record.workload.mod), _target_text(record.target))
        name, count, fastest = best.get(key) or (_task_name(record), 0, math.inf)
        best[key] = (name, count + 1, min(fastest, seconds))
    return sorted((TaskSummary(name, target, count, fastest * 1e6)
                   for (_, target), (name, count, fastest) in best.items()), key=lambda t: (t.target, -t.best_us))


def merge(sources: Sequence[Path], output: Path) -> tuple[int, int]:
    """Every measured record of `sources` committed into the database `output` (created, or added to);
    returns (records merged, workloads in the output). The output is locked while it is written."""
    if not sources:
        raise UsageError("name the databases to merge")
    for source in sources:
        _existing(source)
        if source.resolve() == output.resolve():
            raise UsageError(f"{output} is both a source and the output; merge into another directory")
    merged = 0
    with database_lock(output):
        target = open_database(output)
        seen = {_identity(record) for record in target.get_all_tuning_records()}
        for source in sources:
            for record in open_database(source).get_all_tuning_records():
                if measured_secs(record) is None or _identity(record) in seen:
                    continue  # a failed measurement, or a record the output has (a database merged twice)
                seen.add(_identity(record))
                workload = target.commit_workload(record.workload.mod)
                target.commit_tuning_record(ms.database.TuningRecord(
                    record.trace, workload, record.run_secs, record.target, record.args_info))
                merged += 1
    return merged, _workload_count(output)


def _identity(record: ms.database.TuningRecord) -> str:
    """A record's content (workload, schedule trace, run times, target), to recognise the same record twice."""
    secs = [round(float(s), 12) for s in (record.run_secs or [])]
    return f"{structural_hash(record.workload.mod)}|{record.target}|{secs}|{record.trace}"


def _workload_count(directory: Path) -> int:
    path = directory / WORKLOADS
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.exists() else 0
