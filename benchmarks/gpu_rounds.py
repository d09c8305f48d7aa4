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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cnndsl  # noqa: E402

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
            results.rename(results.with_suffix(f".{round_name(state.rounds[-1]['round'])}.json"))
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
    """The shipped pre-tuned database (cnndsl/tuned/h100/): the best record of each kernel in DATABASE,
    with the provenance of the measurements (from the results files kept in .gpu-results/)."""
    from tvm.s_tir import meta_schedule as ms

    from cnndsl.backends.tvm.pretuned import PROVENANCE, TUNED
    from cnndsl.backends.tvm.records import summarize
    from cnndsl.backends.tvm.tune import RECORDS, WORKLOADS, open_database

    out = TUNED / "h100"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    pruned = ms.database.JSONDatabase(str(out / WORKLOADS), str(out / RECORDS), allow_missing=True)
    open_database(DATABASE).dump_pruned(pruned)
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
    parser.add_argument("action", choices=["build", "pending", "runtime", "show", "publish"])
    parser.add_argument("networks", nargs="*", default=list(NETWORKS))
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--candidates", type=int, default=160, help="per network and batch, per round")
    parser.add_argument("--limit", type=float, default=44.0, help="MiB for all the rounds, packed")
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
    else:
        ingest_only(args.networks, batches)


if __name__ == "__main__":
    main()
