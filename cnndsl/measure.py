"""Measure a tuning round's candidates on the machine that has the target: `cnndsl measure BUNDLE -o
results.json`, or `python -m cnndsl.measure BUNDLE -o results.json` where cnndsl's command line (click)
is not installed.

Like `cnndsl.runtime`, this module imports nothing of cnndsl's compiler and none of TVM's: the GPU
machine needs TVM's runtime, numpy and the bundle (`cnndsl tune --rounds-via`, see
cnndsl/backends/tvm/rounds.py). It checks the bundle first (format, the sha256 of every file), then times
each candidate with TVM's time evaluator in a worker process: a kernel that faults (a dead CUDA context)
or hangs costs that candidate, not the round: the worker is replaced and the round goes on. Results are
written to the output file after every candidate (replaced whole, so it is always valid JSON): a
measurement killed mid-round keeps what it measured, and `cnndsl tune --ingest` takes a partial file.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from .runtime import ArtifactError, file_sha256, register_kernels

ROUND_FORMAT, RESULTS_FORMAT, ROUNDS_VERSION = "cnndsl-tuning-round", "cnndsl-tuning-results", 1
ROUND_MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 200_000_000


def read_json_file(path: Path, what: str) -> Any:
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ArtifactError(f"{path} is larger than a {what} can be")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} cannot be read as a {what}: {exc}") from exc


def open_bundle(path: Path, scratch: Path) -> Path:
    """The bundle's directory: `path` itself, or a .tar.xz unpacked into `scratch` (regular files only)."""
    if path.is_dir():
        return path
    if not path.is_file():
        raise ArtifactError(f"{path} is neither a round bundle directory nor its .tar.xz")
    try:
        with tarfile.open(path, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
            tar.extractall(scratch, members=members, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise ArtifactError(f"{path} cannot be unpacked as a round bundle: {exc}") from exc
    found = [p.parent for p in scratch.rglob(ROUND_MANIFEST)]
    if len(found) != 1:
        raise ArtifactError(f"{path} holds {len(found)} round manifests; a bundle holds one")
    return found[0]


def check_bundle(bundle: Path) -> dict[str, Any]:
    """The bundle's manifest, after checking its format and every file's sha256."""
    manifest = read_json_file(bundle / ROUND_MANIFEST, "round manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != ROUND_FORMAT:
        raise ArtifactError(f"{bundle} is not a tuning round bundle (round-based tuning writes them: "
                            "docs/round-tuning.md)")
    if manifest.get("version") != ROUNDS_VERSION:
        raise ArtifactError(f"{bundle} is a round of format version {manifest.get('version')!r}; this cnndsl measures "
                            f"version {ROUNDS_VERSION}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not isinstance(manifest.get("candidates"), list):
        raise ArtifactError(f"{bundle / ROUND_MANIFEST} lacks its file list or candidates")
    for name, expected in files.items():
        path = bundle / name
        if "/" in name or not path.is_file() or file_sha256(path) != expected:
            raise ArtifactError(f"{path} is missing or does not match the round's manifest (sha256 differs): the "
                                "bundle was changed or cut short; carry it again")
    for entry in manifest["candidates"]:
        for key in ("library", "kernels"):
            if entry.get(key) is not None and entry[key] not in files:
                raise ArtifactError(f"candidate {entry.get('id')!r} names {entry[key]!r}, which the manifest lists "
                                    "no checksum for")
    return manifest


def device_description(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the measurements were taken on (the provenance the pre-tuned databases keep)."""
    import tvm

    described: dict[str, Any] = {"kind": manifest["device"]}
    if manifest["device"] == "cuda":
        from .runtime import _cuda_device

        device, why = _cuda_device(tvm, 0)
        if not device.exist:
            raise ArtifactError(f"the round was built for a CUDA GPU, and this machine has none{why}")
        described.update(name=device.device_name, compute_version=device.compute_version)
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30, check=False).stdout.strip()
            described["nvidia_smi"] = smi.splitlines()[0] if smi else None
        except (OSError, subprocess.TimeoutExpired):
            described["nvidia_smi"] = None
    else:
        import platform

        described.update(name=platform.processor() or platform.machine(), cores=os.cpu_count())
    return described


def _order(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Candidates taken a task at a time in turn, so a budget that runs out leaves every task measured."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for entry in candidates:
        if entry.get("library"):
            by_task.setdefault(str(entry.get("task")), []).append(entry)
    ordered = []
    while any(by_task.values()):
        for queue in by_task.values():
            if queue:
                ordered.append(queue.pop(0))
    return ordered


class Worker:
    """A measuring process, replaced when it dies, hangs or loses its CUDA context."""

    def __init__(self, bundle: Path, repeat: int, min_repeat_ms: int) -> None:
        self.command = [sys.executable, "-m", "cnndsl.measure", "--worker", str(bundle), "--repeat", str(repeat),
                        "--min-repeat-ms", str(min_repeat_ms)]
        self.process: subprocess.Popen[str] | None = None
        self.restarts = 0

    def _start(self) -> subprocess.Popen[str]:
        if self.process is None or self.process.poll() is not None:
            if self.process is not None:
                self.restarts += 1
            self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL, text=True, bufsize=1)
        return self.process

    def measure(self, candidate_id: str, timeout: float) -> dict[str, Any]:
        process = self._start()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(candidate_id + "\n")
            process.stdin.flush()
        except OSError:
            return self._lost(f"the measuring process died before {candidate_id} (exit {process.poll()})")
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        if not ready:
            self.stop()
            return {"error": f"no result within {timeout:.0f} s (a hung kernel?); the measuring process was replaced"}
        line = process.stdout.readline()
        if not line:
            code = process.wait()
            return self._lost(f"the measuring process died running this candidate (exit {code}: a fault?)")
        try:
            result = json.loads(line)
        except ValueError:
            self.stop()
            return {"error": f"the measuring process wrote {line[:200]!r}"}
        if result.get("fatal"):
            self.stop()  # its CUDA context is gone: the next candidate gets a fresh process
        return {key: value for key, value in result.items() if key in ("run_secs", "error", "compiler_loaded")}

    def _lost(self, message: str) -> dict[str, Any]:
        self.stop()
        return {"error": message}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def measure_bundle(path: Path, output: Path, budget_s: float = 420.0, repeat: int = 3, min_repeat_ms: int = 10,
                   timeout_s: float = 30.0, log: Any = None) -> dict[str, Any]:
    """Time every candidate of the bundle at `path` (a directory or .tar.xz) within `budget_s` seconds,
    writing the results to `output` after each one. Returns the results."""
    say = log or (lambda line: None)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="cnndsl-round-") as scratch:
        bundle = open_bundle(path, Path(scratch))
        manifest = check_bundle(bundle)
        results: dict[str, Any] = {
            "format": RESULTS_FORMAT, "version": ROUNDS_VERSION, "round": manifest["round"],
            "manifest_sha256": file_sha256(bundle / ROUND_MANIFEST), "target": manifest["target"],
            "device": device_description(manifest), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "repeat": repeat, "min_repeat_ms": min_repeat_ms, "complete": False, "results": {}}
        _write(output, results)
        worker = Worker(bundle, repeat, min_repeat_ms)
        queue = _order(manifest["candidates"])
        try:
            for done, entry in enumerate(queue):
                if time.time() - started > budget_s:
                    say(f"budget of {budget_s:.0f} s spent: {done} of {len(queue)} candidates measured")
                    break
                outcome = worker.measure(entry["id"], timeout_s)
                results["results"][entry["id"]] = outcome
                if done % 50 == 0 or "error" in outcome:
                    say(f"{done + 1}/{len(queue)} {entry['id']} ({entry['task']}): "
                        + (f"{1e6 * sum(outcome['run_secs']) / len(outcome['run_secs']):.2f} us"
                           if "run_secs" in outcome else outcome["error"][:200]))
                results["restarts"] = worker.restarts
                _write(output, results)
            else:
                results["complete"] = True
        finally:
            worker.stop()
        results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        results["seconds"] = round(time.time() - started, 1)
        _write(output, results)
    return results


def _write(output: Path, results: dict[str, Any]) -> None:
    temporary = output.with_name(output.name + ".writing")
    temporary.write_text(json.dumps(results, indent=None) + "\n")
    temporary.replace(output)


def run_worker(bundle: Path, repeat: int, min_repeat_ms: int) -> int:
    """The worker's loop: a candidate id per line in, one JSON line out (module docstring)."""
    import numpy as np
    import tvm

    manifest = read_json_file(bundle / ROUND_MANIFEST, "round manifest")
    entries = {entry["id"]: entry for entry in manifest["candidates"]}
    if manifest["device"] == "cuda":
        from .runtime import _cuda_device

        device, _ = _cuda_device(tvm, 0)
    else:
        device = tvm.cpu(0)
    compiler_loaded = any("libtvm_compiler" in line for line in Path("/proc/self/maps").read_text().splitlines()) \
        if Path("/proc/self/maps").exists() else None
    rng = np.random.default_rng(0)
    for line in sys.stdin:
        entry = entries.get(line.strip())
        if entry is None:
            print(json.dumps({"error": f"no candidate {line.strip()!r} in the bundle"}), flush=True)
            continue
        try:
            if entry.get("kernels"):
                register_kernels(entry["source_sha256"], (bundle / entry["kernels"]).read_bytes())
            library = tvm.runtime.load_module(str(bundle / entry["library"]))
            args = [tvm.runtime.tensor(_random(rng, dtype, shape), device) for _, dtype, shape in entry["args"]]
            evaluator = library.time_evaluator(library.entry_name, device, number=1, repeat=repeat,
                                               min_repeat_ms=min_repeat_ms)
            device.sync()
            secs = [float(s) for s in evaluator(*args).results]
            print(json.dumps({"run_secs": secs, "compiler_loaded": compiler_loaded}), flush=True)
        except Exception as exc:  # TVM raises its own error types; a CUDA error leaves the context unusable
            message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
            print(json.dumps({"error": message, "fatal": manifest["device"] == "cuda"}), flush=True)
            if manifest["device"] == "cuda":
                return 3
    return 0


def _random(rng: Any, dtype: str, shape: list[int]) -> Any:
    import numpy as np

    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    return np.zeros(shape, dtype=dtype)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnndsl.measure", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("results.json"))
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for the whole round")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--min-repeat-ms", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds one candidate may take")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args.bundle, args.repeat, args.min_repeat_ms)
    try:
        results = measure_bundle(args.bundle, args.output, args.budget, args.repeat, args.min_repeat_ms, args.timeout,
                                 log=lambda line: print(line, file=sys.stderr, flush=True))
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(results, args.output))
    return 0


def summary(results: dict[str, Any], output: Path) -> str:
    values = results["results"].values()
    valid = sum(1 for value in values if "run_secs" in value)
    state = "all measured" if results["complete"] else "budget spent before the end"
    return (f"measured {valid} candidate(s), {len(results['results']) - valid} failed, on "
            f"{results['device'].get('name')} in {results.get('seconds', 0):.0f} s ({state}); wrote {output}")


if __name__ == "__main__":
    sys.exit(main())
