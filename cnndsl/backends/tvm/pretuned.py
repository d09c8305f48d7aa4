"""Pre-tuned kernels shipped with cnndsl: tuning databases measured on real devices, applied by default
when compiling for that device, so a user with an H100 or H200 gets tuned kernels without tuning.

Each database is a folder of cnndsl/tuned/ (package data): MetaSchedule's workload and record files,
pruned to the best record of each kernel, and PROVENANCE.json (the GPU, driver, date, rounds and
measurements behind it). They are written from the full databases of the repository's tuning/ folder
by `python benchmarks/gpu_rounds.py publish`; read here, never written (site-packages may be read-only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tvm
from tvm.s_tir import meta_schedule as ms

from .tune import RECORDS, WORKLOADS

TUNED = Path(__file__).resolve().parent.parent.parent / "tuned"
PROVENANCE = "PROVENANCE.json"
# target name -> the folder of cnndsl/tuned/ measured for it (the H200 is the H100's SM: one target)
PRETUNED = {"h100": "h100", "h200": "h100"}


def pretuned_dir(target_name: str) -> Path | None:
    """The shipped database for `target_name`, if cnndsl has one."""
    folder = PRETUNED.get(target_name)
    if folder is None or not (TUNED / folder / RECORDS).is_file():
        return None
    return TUNED / folder


def provenance(directory: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((directory / PROVENANCE).read_text()))
    except (OSError, ValueError):
        return {}


def describe(directory: Path) -> str:
    """`cnndsl's pre-tuned kernels for NVIDIA H200 (driver ..., 2026-12-04, 2 rounds)`."""
    facts = provenance(directory)
    details = ", ".join(str(facts[key]) for key in ("gpu", "measured") if facts.get(key))
    return f"cnndsl's pre-tuned kernels ({details or directory.name})"


def read_only_database(directory: Path) -> ms.database.Database:
    """The database, loaded without the lock and repair a writable one gets."""
    return ms.database.JSONDatabase(path_workload=str(directory / WORKLOADS),
                                    path_tuning_record=str(directory / RECORDS), allow_missing=False)


def missing_kernels(module: tvm.IRModule, target: tvm.target.Target, database: ms.database.Database) -> list[str]:
    """The tasks of `module` (prepared and fused as compile does) that the database has no record for."""
    from .pipeline import fuse
    from .tune import untuned_tasks

    tasks = ms.relax_integration.extract_tasks(fuse(module, target), target)
    return [task.task_name for task in untuned_tasks(tasks, database, target)]
