"""The tuning database survives what a killed run leaves behind: a record or workload line cut in the
middle, garbage, a record of a workload that was never written. Each case is a real MetaSchedule
database (one workload, its records) damaged the way it happens, then opened as a compile would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tvm.s_tir import meta_schedule as ms

from cnndsl.backends.tvm.tune import RECORDS, WORKLOADS, open_database, repair_database

pytestmark = pytest.mark.tvm  # compiles with TVM: not in `make test-fast`


@pytest.fixture(scope="module")
def workload_and_trace() -> tuple[object, object]:
    import tvm
    from tvm import te

    a = te.placeholder((8, 8), name="a")
    b = te.compute((8, 8), lambda i, j: a[i, j] * 2.0, name="b")
    module = tvm.IRModule({"main": te.create_prim_func([a, b])})
    return module, tvm.s_tir.Schedule(module).trace


def write_database(directory: Path, workload_and_trace: tuple[object, object], records: int = 3) -> None:
    import tvm

    module, trace = workload_and_trace
    database = open_database(directory)
    workload = database.commit_workload(module)
    target = tvm.target.Target({"kind": "llvm"})
    for i in range(records):
        database.commit_tuning_record(ms.database.TuningRecord(trace, workload, [1e-3 * (i + 1)], target))


def cut_last_line(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])


def add_garbage(path: Path) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")


def orphan_record(path: Path) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[0].replace("[0,", "[7,", 1)]) + "\n")


@pytest.mark.parametrize(("damage", "file", "records_left", "warned"), [
    (cut_last_line, RECORDS, 2, "ignored 1 line(s) of 3 it cannot load"),
    (add_garbage, RECORDS, 3, "ignored 1 line(s) of 4 it cannot load"),
    (orphan_record, RECORDS, 3, "ignored 1 line(s) of 4 it cannot load"),
    (cut_last_line, WORKLOADS, 0, "ignored 1 line(s) of 1 it cannot load"),  # its records go with it
    (lambda path: path.write_text(""), RECORDS, 0, None),
])
def test_a_damaged_database_loads_what_is_left(tmp_path: Path, workload_and_trace: tuple[object, object],
                                               damage: Callable[[Path], None], file: str, records_left: int,
                                               warned: str | None) -> None:
    write_database(tmp_path, workload_and_trace)
    damage(tmp_path / file)
    if warned is None:
        database = open_database(tmp_path)
    else:
        with pytest.warns(UserWarning, match=r"tuning database .*" + warned.replace("(", r"\(").replace(")", r"\)")):
            database = open_database(tmp_path)
    assert len(database) == records_left
    assert repair_database(tmp_path) == []  # repaired once, for good


def test_a_healthy_database_is_left_alone(tmp_path: Path, workload_and_trace: tuple[object, object]) -> None:
    write_database(tmp_path, workload_and_trace)
    before = {name: (tmp_path / name).read_bytes() for name in (WORKLOADS, RECORDS)}
    assert repair_database(tmp_path) == []
    assert {name: (tmp_path / name).read_bytes() for name in (WORKLOADS, RECORDS)} == before
    assert len(open_database(tmp_path)) == 3
