"""Tuning through TVM's RPC tracker: a real tracker and RPC servers on 127.0.0.1 (free ports, stopped in
teardown), MetaSchedule measuring on them, the records in the same database as local tuning; the
failures a farm has (no tracker, a key no server has, a server dying mid-run) as clear errors or failed
trials, never a hang; cross-compilation for a device this machine is not; `tune-db show` and `merge`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnndsl.backends.tvm import Tracker
from cnndsl.backends.tvm.records import merge, summarize
from cnndsl.backends.tvm.tune import RECORDS, WORKLOADS
from cnndsl.cli import main
from cnndsl.diagnostics import UsageError
from tests.conftest import SPECS

pytestmark = pytest.mark.tvm

KEY = "cnndsl-test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Farm:
    """A tracker and its servers, each a process with its log file."""

    port: int
    logs: Path
    tracker: subprocess.Popen[bytes]
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def add_server(self, key: str = KEY) -> Path:
        index = len(self.servers)
        log = self.logs / f"server{index}.log"
        port = free_port()
        self.servers.append(subprocess.Popen(
            [sys.executable, "-m", "tvm.exec.rpc_server", "--tracker", f"127.0.0.1:{self.port}", "--key", key,
             "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 20)],
            stdout=log.open("wb"), stderr=subprocess.STDOUT))
        return log

    def wait_for(self, count: int, key: str = KEY, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                queue = Tracker("127.0.0.1", self.port, key).state().queues.get(key)
                if queue is not None and queue.total >= count:
                    return
            except UsageError:
                pass
            time.sleep(1)
        raise TimeoutError(f"{count} server(s) did not register with the tracker in {timeout:.0f} s")

    def stop(self) -> None:
        for process in [*self.servers, self.tracker]:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    port = free_port()
    tracker = subprocess.Popen(
        [sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port),
         "--port-end", str(port + 1)], stdout=(tmp_path / "tracker.log").open("wb"), stderr=subprocess.STDOUT)
    started = Farm(port, tmp_path, tracker)
    try:
        deadline = time.monotonic() + 60
        while True:  # the tracker answers once it has started
            try:
                Tracker("127.0.0.1", port, KEY).state()
                break
            except UsageError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield started
    finally:
        started.stop()


def tune(database: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cnndsl.cli", "tune", str(SPECS / "mnist1d.cnn"), "--trials", "8",
         "--tune-db", str(database), "--rpc-tracker", f"127.0.0.1:{port}", "--rpc-key", KEY, "--rpc-timeout", "60",
         "--builders", "2", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_tuning_measures_on_every_server_of_the_key(farm: Farm, tmp_path: Path) -> None:
    logs = [farm.add_server(), farm.add_server()]
    farm.add_server(key="another-board")  # servers of other keys are not used
    farm.wait_for(2)
    run = tune(tmp_path / "db", farm.port)
    output, _ = run.communicate(timeout=1200)
    assert run.returncode == 0, output
    assert "measuring through the RPC tracker" in output and "key 'cnndsl-test': 2 server(s)" in output
    served = [log.read_text().count("load_module") for log in logs]
    assert all(count > 0 for count in served), served  # both servers ran candidates
    assert "load_module" not in (farm.logs / "server2.log").read_text()
    tasks = summarize(tmp_path / "db")
    assert tasks and sum(task.records for task in tasks) == sum(served)
    assert all(task.target.startswith("llvm") and task.best_us > 0 for task in tasks)
    compiled = CliRunner().invoke(main, ["compile", str(SPECS / "mnist1d.cnn"), "--to", "tvm", "--tune-db",
                                         str(tmp_path / "db"), "-o", str(tmp_path / "artifact")])
    assert compiled.exit_code == 0 and "records from" in compiled.output, compiled.output


@pytest.mark.slow
def test_a_server_dying_mid_run_costs_trials_not_the_run(farm: Farm, tmp_path: Path) -> None:
    farm.add_server(), farm.add_server()
    farm.wait_for(2)
    run = tune(tmp_path / "db", farm.port)
    assert run.stdout is not None
    lines = []
    for line in run.stdout:  # kill one server as soon as measuring starts
        lines.append(line)
        if "measuring through" in line:
            farm.servers[0].kill()
            break
    rest, _ = run.communicate(timeout=1200)
    output = "".join(lines) + rest
    assert run.returncode == 0, output
    for name in (WORKLOADS, RECORDS):  # every line loads: nothing half-written
        assert all(json.loads(line) for line in (tmp_path / "db" / name).read_text().splitlines())
    assert summarize(tmp_path / "db")


def test_an_unreachable_tracker_or_an_unknown_key_stops_before_any_work(farm: Farm, tmp_path: Path) -> None:
    start = time.monotonic()
    result = CliRunner().invoke(main, ["tune", str(SPECS / "mnist1d.cnn"), "--tune-db", str(tmp_path / "db"),
                                       "--rpc-tracker", f"127.0.0.1:{free_port()}", "--rpc-key", KEY])
    assert result.exit_code == 2 and "cannot reach the RPC tracker" in result.output, result.output
    result = CliRunner().invoke(main, ["tune", str(SPECS / "mnist1d.cnn"), "--tune-db", str(tmp_path / "db"),
                                       "--rpc-tracker", f"127.0.0.1:{farm.port}", "--rpc-key", "no-such-board"])
    assert result.exit_code == 2 and "no RPC server has registered" in result.output, result.output
    assert "'no-such-board'" in result.output and "Traceback" not in result.output
    assert time.monotonic() - start < 60
    for address, message in [("localhost", "is not HOST:PORT"), ("host:99999", "is not HOST:PORT")]:
        result = CliRunner().invoke(main, ["tune", str(SPECS / "mnist1d.cnn"), "--rpc-tracker", address,
                                           "--rpc-key", KEY])
        assert result.exit_code == 2 and message in result.output, result.output
    result = CliRunner().invoke(main, ["tune", str(SPECS / "mnist1d.cnn"), "--rpc-key", KEY])
    assert result.exit_code == 2 and "give --rpc-tracker too" in result.output


def test_a_port_that_is_not_a_tracker_is_an_error_within_the_timeout(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections and says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        start = time.monotonic()
        with pytest.raises(UsageError, match="did not answer as a TVM tracker"):
            Tracker("127.0.0.1", silent.getsockname()[1], KEY).state()
        assert time.monotonic() - start < 30


def test_candidates_cross_compile_for_an_aarch64_device_without_one() -> None:
    """The remote path builds here for the device's target: LLVM writes AArch64 object code into the tar
    an RPC server links on the board (no cross compiler needed on this machine)."""
    from tvm.s_tir import meta_schedule as ms

    import cnndsl
    from cnndsl.backends.tvm import make_target
    from cnndsl.backends.tvm.lower import build_relax
    from cnndsl.backends.tvm.pipeline import fuse, prepared
    from cnndsl.backends.tvm.tune import WarmWorkerBuilder

    network = cnndsl.load(SPECS / "mnist1d.cnn")
    target = make_target('{"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"], "num-cores": 4}')
    module, _ = prepared(build_relax(network.graph, network.weights(), 1), target, "auto", "auto", True)
    tasks = ms.relax_integration.extract_tasks(fuse(module, target), target)
    builder = WarmWorkerBuilder(max_workers=1)
    try:
        results = builder.build([ms.builder.BuilderInput(task.dispatched[0], target) for task in tasks[:2]])
    finally:
        builder.shutdown()
    for result in results:
        assert result.error_msg is None and result.artifact_path is not None
        with tarfile.open(result.artifact_path) as tar:
            objects = [tar.extractfile(member).read() for member in tar.getmembers()]  # type: ignore[union-attr]
        assert objects and all(data[:4] == b"\x7fELF" and int.from_bytes(data[18:20], "little") == 183
                               for data in objects)  # e_machine 183: AArch64


def workload(scale: float) -> tuple[object, object]:
    """A small real workload (b = a * scale) and its unscheduled trace, as MetaSchedule stores them."""
    import tvm
    from tvm import te

    a = te.placeholder((8, 8), name="a")
    b = te.compute((8, 8), lambda i, j: a[i, j] * scale, name="b")
    module = tvm.IRModule({"main": te.create_prim_func([a, b])})
    return module, tvm.s_tir.Schedule(module).trace


def database(directory: Path, records: list[tuple[tuple[object, object], float]]) -> Path:
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from cnndsl.backends.tvm.tune import open_database

    opened = open_database(directory)
    for (module, trace), seconds in records:
        committed = opened.commit_workload(module)
        opened.commit_tuning_record(ms.database.TuningRecord(trace, committed, [seconds], tvm.target.Target("llvm")))
    return directory


def test_tune_db_show_and_merge(tmp_path: Path) -> None:
    """Two databases (from two machines, say) pooled: every measured record once, each task's best shown."""
    double, triple = workload(2.0), workload(3.0)
    first = database(tmp_path / "a", [(double, 2e-3), (double, 1e-3)])
    second = database(tmp_path / "b", [(double, 5e-4), (triple, 3e-3)])
    assert merge([first, second], tmp_path / "all") == (4, 2)
    assert merge([first], tmp_path / "all") == (0, 2)  # a database merged twice adds nothing
    tasks = summarize(tmp_path / "all")
    assert sorted((task.records, round(task.best_us)) for task in tasks) == [(1, 3000), (3, 500)]
    assert all(task.name == "b (8x8, 8x8)" and task.target.startswith("llvm") for task in tasks)
    shown = CliRunner().invoke(main, ["tune-db", "show", str(tmp_path / "all")])
    assert shown.exit_code == 0 and "2 task(s), 4 measured record(s)" in shown.output, shown.output
    result = CliRunner().invoke(main, ["tune-db", "merge", str(first), str(second), "-o", str(tmp_path / "more")])
    assert result.exit_code == 0 and "merged 4 new record(s) from 2 database(s)" in result.output
    result = CliRunner().invoke(main, ["tune-db", "merge", str(first), "-o", str(first)])
    assert result.exit_code == 2 and "both a source and the output" in result.output
    result = CliRunner().invoke(main, ["tune-db", "show", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "is not a tuning database" in result.output
