"""Tuning in rounds through files (cnndsl/backends/tvm/rounds.py, cnndsl/measure.py), end to end on the
CPU: rounds written here, measured by a separate process that can import neither cnndsl's compiler nor
TVM's (its native compiler library never loaded), ingested into a real MetaSchedule database, resumed
without repeating a measured candidate, and compiled from the records without measuring; a measurement
killed mid-round keeps what it wrote; a changed bundle, another round's results, another network's
round directory and an oversized bundle are refused with clear errors. The CUDA variant builds its
kernels to cubins here (no GPU needed)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cnndsl
from cnndsl.diagnostics import UsageError
from tests.conftest import SPECS

pytestmark = pytest.mark.tvm

CANDIDATES = 12

# A Python that fails on importing anything of the compiler: cnndsl's (but its runtime and the measuring
# module), lark, pydantic, click, networkx, xgboost, and TVM's compiler-side packages.
NO_COMPILER = """
import sys
class NoCompiler:
    allowed = {'cnndsl', 'cnndsl.runtime', 'cnndsl.measure'}
    blocked = ('lark', 'pydantic', 'click', 'networkx', 'xgboost', 'tvm.relax', 'tvm.s_tir')
    def find_spec(self, name, path=None, target=None):
        if (name.startswith('cnndsl') and name not in self.allowed) or name.startswith(self.blocked):
            raise ImportError(f'{name} must not be needed to measure a round')
sys.meta_path.insert(0, NoCompiler())
"""


def runtime_only_env(tmp: Path) -> dict[str, str]:
    site = tmp / "no-compiler"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NO_COMPILER)
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), root]), "TVM_USE_RUNTIME_LIB": "1"}


def measure(bundle: Path, output: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cnndsl.measure", str(bundle), "-o", str(output), *extra],
                          capture_output=True, text=True, env=env, check=False, timeout=600)


@pytest.fixture(scope="module")
def mnist() -> cnndsl.Network:
    return cnndsl.load(SPECS / "mnist1d.cnn")


@pytest.fixture(scope="module")
def rounds(mnist: cnndsl.Network, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Round 1 written, measured runtime-only, ingested; round 2 written."""
    from cnndsl.backends.tvm import tune_round

    root = tmp_path_factory.mktemp("rounds")
    directory, database = root / "rounds", root / "db"
    first = tune_round(mnist.graph, mnist.weights(), "llvm", directory, CANDIDATES, database_dir=database)
    env = runtime_only_env(root)
    results = root / "results-1.json"
    done = measure(Path(str(first.bundle) + ".tar.xz"), results, env)
    shutil.rmtree(first.bundle)  # as in a fresh checkout: only the packed round is kept, and ingesting reads it
    second = tune_round(mnist.graph, mnist.weights(), "llvm", directory, CANDIDATES, ingest=results,
                        database_dir=database)
    return {"root": root, "directory": directory, "database": database, "first": first, "second": second,
            "measured": done, "results": results, "env": env}


def records(database: Path) -> list[list[object]]:
    return [json.loads(line) for line in (database / "database_tuning_record.json").read_text().splitlines()]


def test_a_round_is_measured_runtime_only_and_ingested(rounds: dict[str, object]) -> None:
    done = rounds["measured"]
    assert isinstance(done, subprocess.CompletedProcess) and done.returncode == 0, done.stderr[-2000:]
    results = json.loads(Path(str(rounds["results"])).read_text())
    assert results["complete"] and results["round"] == 1
    measured = [r for r in results["results"].values() if "run_secs" in r]
    assert len(measured) >= CANDIDATES // 2
    # the measuring processes never loaded TVM's compiler library
    assert all(r["compiler_loaded"] is False for r in measured)
    first = rounds["first"]
    assert first.round == 1 and first.candidates == len(results["results"])
    second = rounds["second"]
    assert second.round == 2 and second.ingested == first.candidates - first.baselines
    stored = records(Path(str(rounds["database"])))
    assert len(stored) == first.candidates - first.baselines
    valid = [r for r in stored if min(r[1][1]) < 1e9]  # [workload index, [trace, run_secs, target, args]]
    assert len(valid) == len(measured) - first.baselines
    for record in valid:  # the run times are the measured ones, not made up
        assert any(record[1][1] == m["run_secs"] for m in measured)
    # round 1 also timed each task's default schedule: ingested as baselines, not as records
    baselines = json.loads((Path(str(rounds["database"])) / "baselines.json").read_text())
    assert len(baselines) == 5 and all(0 < secs < 1 for secs in baselines.values())
    assert sum(1 for key in results["results"] if key.startswith("b")) == 5
    assert first.baselines == 5 and rounds["second"].baselines == 0
    state = json.loads((Path(str(rounds["directory"])) / "state.json").read_text())
    assert [r["round"] for r in state["rounds"]] == [1, 2]
    assert state["rounds"][0]["ingested"] and not state["rounds"][1]["ingested"]


def test_a_resumed_search_never_proposes_a_measured_candidate(rounds: dict[str, object],
                                                              mnist: cnndsl.Network) -> None:
    """Round 2 was written by a search that started from the database (as a run days later would):
    none of its candidates is one measured in round 1 (MetaSchedule's search alone does not skip them)."""
    from tvm.s_tir import meta_schedule as ms
    from tvm_ffi import structural_hash

    from cnndsl.backends.tvm.rounds import records_path

    def scheduled(path: Path) -> set[int]:
        database = ms.database.JSONDatabase(str(path / "database_workload.json"),
                                            str(path / "database_tuning_record.json"), allow_missing=False)
        return {structural_hash(record.as_measure_candidate().sch.mod)
                for record in database.get_all_tuning_records()}

    measured = scheduled(Path(str(rounds["database"])))
    proposed = scheduled(records_path(rounds["second"].bundle))  # type: ignore[attr-defined]
    assert measured and proposed
    assert not measured & proposed


def test_a_compile_uses_the_records_and_measures_nothing(rounds: dict[str, object], mnist: cnndsl.Network,
                                                        tmp_path: Path) -> None:
    from cnndsl.backends.tvm import compile_network

    before = records(Path(str(rounds["database"])))
    tuned = compile_network(mnist.graph, mnist.weights(), "llvm", tmp_path / "tuned",
                            database_dir=Path(str(rounds["database"])))
    assert tuned.tuning is not None and tuned.tuning.trials == 0
    assert records(Path(str(rounds["database"]))) == before
    plain = compile_network(mnist.graph, mnist.weights(), "llvm", tmp_path / "plain")
    x = np.random.default_rng(0).standard_normal((1, 1, 40)).astype(np.float32)
    np.testing.assert_allclose(tuned.load()(x), plain.load()(x), rtol=1e-4, atol=1e-5)


def test_ingesting_waits_for_results_and_refuses_other_rounds(rounds: dict[str, object],
                                                             mnist: cnndsl.Network) -> None:
    from cnndsl.backends.tvm import tune_round

    directory, database = Path(str(rounds["directory"])), Path(str(rounds["database"]))
    with pytest.raises(UsageError, match="round-0002 .* is waiting for its measurements"):
        tune_round(mnist.graph, mnist.weights(), "llvm", directory, CANDIDATES, database_dir=database)
    with pytest.raises(UsageError, match="holds the measurements of another bundle"):  # round 1's results
        tune_round(mnist.graph, mnist.weights(), "llvm", directory, CANDIDATES, ingest=Path(str(rounds["results"])),
                   database_dir=database)


def test_a_round_directory_belongs_to_one_network(rounds: dict[str, object]) -> None:
    from cnndsl.backends.tvm import tune_round

    other = cnndsl.load(SPECS / "resnet18.cnn")
    with pytest.raises(UsageError, match="holds rounds of mnist1d for another graph sha256"):
        tune_round(other.graph, other.weights(), "llvm", Path(str(rounds["directory"])), CANDIDATES,
                   database_dir=Path(str(rounds["database"])))


def test_a_changed_bundle_is_refused(rounds: dict[str, object], tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(rounds["second"].bundle, bundle)  # type: ignore[attr-defined]
    library = next(bundle.glob("c*.so"))
    data = library.read_bytes()
    library.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    done = measure(bundle, tmp_path / "out.json", dict(rounds["env"]))  # type: ignore[arg-type]
    assert done.returncode == 2
    assert f"{library} is missing or does not match the round's manifest" in done.stderr
    from click.testing import CliRunner

    from cnndsl.cli import main

    cli = CliRunner().invoke(main, ["measure", str(bundle), "-o", str(tmp_path / "cli.json")])
    assert cli.exit_code == 2 and "does not match the round's manifest" in cli.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["version"] = 99
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    done = measure(bundle, tmp_path / "out.json", dict(rounds["env"]))  # type: ignore[arg-type]
    assert done.returncode == 2 and "format version 99" in done.stderr


def test_a_killed_measurement_keeps_what_it_measured(rounds: dict[str, object], tmp_path: Path) -> None:
    output = tmp_path / "partial.json"
    bundle = rounds["second"].bundle  # type: ignore[attr-defined]
    process = subprocess.Popen([sys.executable, "-m", "cnndsl.measure", str(bundle), "-o", str(output),
                                "--min-repeat-ms", "300"], env=dict(rounds["env"]),  # type: ignore[arg-type]
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    count = 0
    while time.monotonic() < deadline and count < 2:
        time.sleep(0.2)
        try:
            count = len(json.loads(output.read_text())["results"])
        except (OSError, ValueError):
            count = 0
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    partial = json.loads(output.read_text())  # whole JSON, whenever it was killed
    assert partial["complete"] is False and 2 <= len(partial["results"]) < rounds["second"].candidates  # type: ignore[attr-defined]


def test_a_bundle_over_the_limit_is_refused(mnist: cnndsl.Network, tmp_path: Path) -> None:
    from cnndsl.backends.tvm import tune_round

    with pytest.raises(UsageError, match="over the limit of 0.001 MiB"):
        tune_round(mnist.graph, mnist.weights(), "llvm", tmp_path / "rounds", 2, database_dir=tmp_path / "db",
                   bundle_limit_mib=0.001)


def test_a_cuda_round_carries_cubins_compiled_here(mnist: cnndsl.Network, tmp_path: Path) -> None:
    from cnndsl.backends.tvm import tune_round
    from cnndsl.backends.tvm.cuda import nvcc_available

    if not nvcc_available():
        pytest.skip("nvcc is not installed")
    report = tune_round(mnist.graph, mnist.weights(), "h200", tmp_path / "rounds", 6, database_dir=tmp_path / "db")
    manifest = json.loads((report.bundle / "manifest.json").read_text())
    assert manifest["device"] == "cuda" and "sm_90" in manifest["target"]
    built = [entry for entry in manifest["candidates"] if entry["library"]]
    assert len(built) == report.candidates >= 4
    for entry in built:
        cubin = (report.bundle / entry["kernels"]).read_bytes()
        assert cubin[:4] == b"\x7fELF"  # a compiled kernel, not source
        assert len(entry["source_sha256"]) == 64
    # the measuring side refuses it on a machine without a GPU, clearly
    done = measure(report.bundle, tmp_path / "out.json", runtime_only_env(tmp_path))
    assert done.returncode == 2 and "built for a CUDA GPU, and this machine has none" in done.stderr


@pytest.mark.parametrize(("best_us", "weights", "total", "expected"), [
    ([None, None, None], [1, 1, 1], 30, [10, 10, 10]),  # nothing measured: equal shares
    ([10.0, 30.0, None], [1, 1, 1], 28, [6, 11, 11]),  # by time; the unmeasured count as the slowest
    ([10.0, 10.0], [1, 3], 24, [8, 16]),  # a kernel run three times weighs three times
    ([1.0, 1.0, 1.0], [1, 1, 1], 2, [1, 1, 0]),  # fewer than the floor: the budget is still respected
])
def test_a_round_shares_its_candidates_by_estimated_time(best_us: list[float | None], weights: list[int],
                                                          total: int, expected: list[int]) -> None:
    from cnndsl.backends.tvm.rounds import Task, share_candidates

    tasks = [Task(f"t{i}", float(w), None, None, best_secs=(b * 1e-6 if b is not None else math.inf))  # type: ignore[arg-type]
             for i, (b, w) in enumerate(zip(best_us, weights, strict=True))]
    shares = share_candidates(tasks, total)
    assert sum(shares) == total
    assert shares == expected


@pytest.mark.parametrize("cuda_graph", [True, False])
def test_cuda_graphs_are_captured_in_the_artifact_when_asked(mnist: cnndsl.Network, tmp_path: Path,
                                                            cuda_graph: bool) -> None:
    """Built here without a GPU: the executable calls the CUDA graph builtins only with --cuda-graph."""
    compiled = mnist.to_tvm("h200", tmp_path / "artifact", cuda_graph=cuda_graph)
    manifest = json.loads((compiled.path / "manifest.json").read_text())
    assert manifest["cuda_graph"] is cuda_graph and "sm_90" in manifest["target"]
    assert (b"vm.builtin.cuda_graph.run_or_capture" in (compiled.path / "model.so").read_bytes()) is cuda_graph


def test_cuda_graphs_need_a_cuda_target(mnist: cnndsl.Network, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="CUDA graphs apply to CUDA targets; this one is llvm"):
        mnist.to_tvm("llvm", tmp_path / "artifact", cuda_graph=True)


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shipped database as `gpu_rounds.py publish` writes it, from the repository's records measured on
    an H200 (ResNet-18 at batch 1), with baselines: the stem convolution's default schedule measured
    faster than its records (so it keeps DLight's), the last convolution's slower (its record applies)."""
    import shutil

    from cnndsl.backends.tvm import pretuned

    records = Path(__file__).resolve().parent.parent / "tuning" / "h200"
    root = tmp_path / "tuned"
    (root / "h100").mkdir(parents=True)
    for name in ("database_workload.json", "database_tuning_record.json"):
        shutil.copy(records / name, root / "h100" / name)
    (root / "h100" / "PROVENANCE.json").write_text(json.dumps({"gpu": "NVIDIA H200 (test)", "measured": "today"}))
    monkeypatch.setattr(pretuned, "TUNED", root)
    return root / "h100"


def resnet18_tasks() -> tuple[object, list[object]]:
    from tvm.s_tir import meta_schedule as ms

    from cnndsl.backends.tvm import prepare_network
    from cnndsl.backends.tvm.pipeline import fuse

    network = cnndsl.load(SPECS / "resnet18.cnn")
    target, _, _, module = prepare_network(network.graph, network.weights(), "h200", 1, "auto", "auto", tuned=True)
    return target, ms.relax_integration.extract_tasks(fuse(module, target), target)


def test_the_shipped_kernels_apply_only_where_they_beat_the_default_schedule(shipped: Path, tmp_path: Path) -> None:
    from tvm_ffi import structural_hash

    from cnndsl.backends.tvm.pretuned import read_only_database
    from cnndsl.backends.tvm.rounds import winning_records, write_baselines

    target, tasks = resnet18_tasks()
    by_name = {task.task_name: task for task in tasks}  # type: ignore[attr-defined]
    stem, last = by_name["fused_conv2d_add_relu1"], by_name["fused_conv2d9_add7_relu41"]
    write_baselines(shipped, {str(structural_hash(stem.dispatched[0])): 1e-6,  # faster than any record
                              str(structural_hash(last.dispatched[0])): 1.0})  # slower than every record
    winners, dropped = winning_records(read_only_database(shipped), {str(structural_hash(stem.dispatched[0])): 1e-6},
                                       target)  # type: ignore[arg-type]
    assert dropped == 1
    only_compared, _ = winning_records(read_only_database(shipped), {str(structural_hash(last.dispatched[0])): 1.0},
                                       target, compared_only=True)  # type: ignore[arg-type]
    assert len(only_compared.get_all_tuning_records()) == 1
    lines: list[str] = []
    network = cnndsl.load(SPECS / "resnet18.cnn")
    tuned = network.to_tvm("h200", tmp_path / "shipped", log=lines.append)
    assert lines == ["using cnndsl's pre-tuned kernels (NVIDIA H200 (test), today); 1 kernel(s) keep default "
                     "schedules (no record faster than them): fused_conv2d_add_relu1 (a build without "
                     "pre-tuned kernels leaves them out)"]
    plain = network.to_tvm("h200", tmp_path / "plain", pretuned=False, log=lines.append)
    assert len(lines) == 1  # nothing said: no records used
    from cnndsl.backends.tvm.cuda import nvcc_available

    if not nvcc_available():  # the kernels' source hash is in the manifest when nvcc compiled them
        return
    assert json.loads((tuned.path / "manifest.json").read_text())["cuda_kernels"]["source_sha256"] != \
        json.loads((plain.path / "manifest.json").read_text())["cuda_kernels"]["source_sha256"]


def test_a_network_without_shipped_records_says_so(shipped: Path, mnist: cnndsl.Network, tmp_path: Path) -> None:
    lines: list[str] = []
    mnist.to_tvm("h200", tmp_path / "artifact", log=lines.append)
    assert len(lines) == 1 and "5 kernel(s) keep default schedules (no record faster than them): " in lines[0]
