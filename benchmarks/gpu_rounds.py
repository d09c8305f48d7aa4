"""Tuned GPU kernels for the GPU benchmark's networks, a round at a time (docs/round-tuning.md).

Here (no GPU, TVM's compiler): `make gpu-round` runs `python benchmarks/gpu_rounds.py build`, which for
each network and batch of the benchmark ingests the last round's measurements (`.gpu-results/`, brought
back from the GPU machine) into the database `tuning/h200/` (committed: the records from every window,
with provenance), writes the next round's bundle, and gathers what the GPU machine needs into
`.gpu-bundle/` (the rounds, TVM's runtime without its compiler, the cp312 wheel of tvm-ffi): carried
with the repository, under 64 MiB.

There (`bash benchmarks/gpu_round.sh`, at most about 7 minutes): measure every round with
`python -m cnndsl.measure` (TVM's runtime and numpy only), each within its share of the time, results to
$OUT. One process does every network here, so TVM's tensor intrinsics (a minute to import on this
machine) load once.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import cnndsl

ROOT = Path(__file__).resolve().parent.parent

NETWORKS = {"resnet18": None, "mobilenet_v2": None, "vgg16": None, "unet": (1, 256, 256)}
BATCHES = (1, 16)
TARGET = "h200"
DATABASE = ROOT / "tuning" / "h200"
ROUNDS = DATABASE / "rounds"  # each configuration's state, pending round (.tar.xz) and its build-side records
RESULTS = ROOT / ".gpu-results"
BUNDLE = ROOT / ".gpu-bundle"
TVM_FFI_WHEEL = "apache-tvm-ffi==0.1.14.post0"


def load(name: str) -> cnndsl.Network:
    network = cnndsl.load(ROOT / "specs" / f"{name}.cnn")
    if NETWORKS[name] is None:
        return network
    return cnndsl.load(ROOT / "specs" / f"{name}.cnn", inputs={next(iter(network.graph.inputs)): NETWORKS[name]})


def configs(names: list[str], batches: tuple[int, ...]) -> list[tuple[str, str, int]]:
    return [(f"{name}_b{batch}", name, batch) for name in names for batch in batches]


def build(names: list[str], batches: tuple[int, ...], candidates: int, limit_mib: float) -> None:
    """Ingest what came back, write each configuration's next round (a round still waiting for its
    measurements is left as it is: it travels again)."""
    from cnndsl.backends.tvm import tune_round
    from cnndsl.backends.tvm.rounds import RoundsState, round_name

    chosen = configs(names, batches)
    for label, name, batch in chosen:
        start = time.perf_counter()
        directory = ROUNDS / label
        state = RoundsState.read(directory)
        pending = state is not None and state.rounds and not state.rounds[-1].get("ingested")
        results = RESULTS / f"{label}.json"
        if pending and not results.exists():
            print(f"{label}: {round_name(state.rounds[-1]['round'])} is waiting for {results}", flush=True)
            continue
        network = load(name)
        report = tune_round(network.graph, network.weights(), TARGET, directory, candidates,
                            results if pending else None, DATABASE, batch, seed=0,
                            bundle_limit_mib=limit_mib / len(chosen), log=lambda line: print(line, flush=True))
        print(f"{label}: {report.summary()} ({time.perf_counter() - start:.0f} s)", flush=True)
        if pending:  # kept beside the others, out of the way of the next round's results
            done = round_name(state.rounds[-1]["round"])
            results.rename(results.with_suffix(f".{done}.json"))
            # its records are in the database now: the repository keeps only the round that waits
            for path in (directory / f"{done}.records", directory / done):
                shutil.rmtree(path, ignore_errors=True)
            (directory / f"{done}.tar.xz").unlink(missing_ok=True)
    runtime_bundle()


def pending_bundles() -> list[Path]:
    """The packed rounds waiting for measurements (what the GPU machine measures), read from the
    committed state files with the standard library only (the GPU machine has no TVM compiler)."""
    found = []
    for state_path in sorted(ROUNDS.glob("*/state.json")):
        rounds = json.loads(state_path.read_text()).get("rounds") or []
        if rounds and not rounds[-1].get("ingested"):
            found.append(state_path.parent / f"round-{rounds[-1]['round']:04d}.tar.xz")
    return found


def runtime_bundle() -> None:
    """TVM's runtime without its compiler, and the tvm-ffi wheel for the GPU machine's Python 3.12."""
    import tvm

    if not (BUNDLE / "tvm-runtime.tar.xz").exists():
        runtime_dir = Path(tvm.__file__).parent
        with tarfile.open(BUNDLE / "tvm-runtime.tar.xz", "w:xz") as tar:
            tar.add(runtime_dir, arcname="tvm", filter=lambda info: None if (
                info.name.endswith("libtvm_compiler.so") or "__pycache__" in info.name) else info)
    wheels = BUNDLE / "wheels"
    if not list(wheels.glob("apache_tvm_ffi-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                        "--platform", "manylinux2014_x86_64", "-d", str(wheels), TVM_FFI_WHEEL], check=True)


def publish() -> None:
    """The shipped pre-tuned database (cnndsl/tuned/h100/): the best record of each kernel in DATABASE that
    beat its default schedule measured in the same rounds (kernels not compared are left out),
    with the provenance of the measurements (from the results files kept in .gpu-results/)."""
    from tvm.s_tir import meta_schedule as ms

    from cnndsl.backends.tvm.compile import make_target
    from cnndsl.backends.tvm.pretuned import PROVENANCE, TUNED, read_only_database
    from cnndsl.backends.tvm.records import summarize
    from cnndsl.backends.tvm.rounds import read_baselines, winning_records, write_baselines
    from cnndsl.backends.tvm.tune import RECORDS, WORKLOADS

    baselines = read_baselines(DATABASE)
    winners, _ = winning_records(read_only_database(DATABASE), baselines, make_target(TARGET), compared_only=True)
    out = TUNED / "h100"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    pruned = ms.database.JSONDatabase(str(out / WORKLOADS), str(out / RECORDS), allow_missing=True)
    winners.dump_pruned(pruned)
    write_baselines(out, baselines)
    devices, rounds = set(), 0
    for path in sorted(RESULTS.glob("*.json")):
        results = json.loads(path.read_text())
        devices.add(f"{results['device'].get('name')} (driver {results['device'].get('nvidia_smi', '').split(',')[0]}, "
                    f"compute {results['device'].get('compute_version')})")
        rounds += 1
    tasks = summarize(DATABASE)
    facts = {"gpu": "; ".join(sorted(devices)) or "NVIDIA H200", "target": "nvidia/nvidia-h100 (sm_90a)",
             "measured": time.strftime("%Y-%m-%d"), "rounds_measured": rounds,
             "kernels": len(tasks), "records": sum(task.records for task in tasks),
             "records_per_kernel": {task.name: task.records for task in tasks},
             "how": "cnndsl tune --target h200 --rounds-via, measured by cnndsl measure (benchmarks/gpu_rounds.py; "
                    "docs/round-tuning.md)"}
    (out / PROVENANCE).write_text(json.dumps(facts, indent=1) + "\n")
    print(f"wrote {out}: {len(tasks)} kernels, best record of each", flush=True)


def kernel_table(names: list[str], batches: tuple[int, ...], peak_tflops: float) -> None:
    """Per kernel of each network: how often it runs, its best measured time, the fraction of the fp32
    peak it reaches, and the network's time estimated from them (the sum of best times, as MetaSchedule
    estimates it: no launch gaps), from the database alone (read-only: a build may hold its lock)."""
    import math

    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops
    from tvm_ffi import structural_hash

    from cnndsl.backends.tvm import prepare_network
    from cnndsl.backends.tvm.pipeline import fuse
    from cnndsl.backends.tvm.pretuned import read_only_database
    from cnndsl.backends.tvm.records import measured_secs

    database = read_only_database(DATABASE)
    best: dict[int, float] = {}
    counts: dict[int, int] = {}
    for record in database.get_all_tuning_records():
        secs = measured_secs(record)
        key = structural_hash(record.workload.mod)
        counts[key] = counts.get(key, 0) + 1
        if secs is not None:
            best[key] = min(best.get(key, math.inf), secs)
    for label, name, batch in configs(names, batches):
        network = load(name)
        target, _, _, module = prepare_network(network.graph, network.weights(), TARGET, batch, "auto", "auto", True)
        tasks = ms.relax_integration.extract_tasks(fuse(module, target), target)
        rows, total, missing = [], 0.0, 0
        for task in tasks:
            key = structural_hash(task.dispatched[0])
            flops = estimate_tir_flops(task.dispatched[0])
            secs = best.get(key)
            if secs is None:
                missing += 1
                rows.append(f"| {task.task_name} | {int(task.weight)} | {counts.get(key, 0)} | - | - | - |")
                continue
            total += secs * float(task.weight)
            tflops = flops / secs / 1e12
            rows.append(f"| {task.task_name} | {int(task.weight)} | {counts[key]} | {secs * 1e6:.2f} | "
                        f"{tflops:.2f} | {100 * tflops / peak_tflops:.1f}% |")
        if not any(key in best for key in (structural_hash(t.dispatched[0]) for t in tasks)):
            continue
        state = "" if not missing else f" ({missing} kernel(s) not measured yet)"
        print(f"\n{label}: sum of the best kernel times {total * 1e3:.3f} ms{state}\n")
        print("| kernel | runs | records | best (us) | TFLOPS | of fp32 peak |\n|---|---:|---:|---:|---:|---:|")
        print("\n".join(rows))


def ingest_only(names: list[str], batches: tuple[int, ...]) -> None:
    """Print what each configuration's results hold (a check before `build`)."""
    for label, _, _ in configs(names, batches):
        path = RESULTS / f"{label}.json"
        if path.exists():
            results = json.loads(path.read_text())
            valid = sum(1 for r in results["results"].values() if "run_secs" in r)
            print(f"{label}: round {results['round']}, {valid} measured of {len(results['results'])}, "
                  f"on {results['device'].get('name')}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["build", "pending", "runtime", "show", "publish", "table"])
    parser.add_argument("networks", nargs="*", default=list(NETWORKS))
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--candidates", type=int, default=160, help="per network and batch, per round")
    parser.add_argument("--limit", type=float, default=44.0, help="MiB for all the rounds, packed")
    parser.add_argument("--peak", type=float, default=66.9, help="the GPU's fp32 peak in TFLOPS (table; H200: "
                        "132 SMs x 128 lanes x 2 x 1980 MHz)")
    args = parser.parse_args()
    batches = tuple(int(b) for b in args.batches.split(","))
    if args.action == "build":
        build(args.networks, batches, args.candidates, args.limit)
    elif args.action == "pending":
        print("\n".join(str(path.relative_to(ROOT)) for path in pending_bundles()))
    elif args.action == "runtime":
        runtime_bundle()
    elif args.action == "publish":
        publish()
    elif args.action == "table":
        kernel_table(args.networks, batches, args.peak)
    else:
        ingest_only(args.networks, batches)


if __name__ == "__main__":
    main()
