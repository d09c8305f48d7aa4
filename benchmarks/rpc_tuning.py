"""Per-candidate build and measurement cost of tuning through a TVM RPC tracker, for the speed-up model of
docs/distributed-tuning.md. Run by hand (about 10 minutes on 2 cores):

    .venv/bin/python benchmarks/rpc_tuning.py [--spec specs/resnet18.cnn] [--trials 64]

Starts a tracker and one RPC server on 127.0.0.1, tunes SPEC through them into a fresh database, and
prints `cnndsl tune`'s timing line (candidates built, worker-seconds per build, seconds per measurement)
and the modelled trials per second for 1, 4 and 16 servers at this machine's builder count and at 16.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log.open("wb"), stderr=subprocess.STDOUT)


def throughput(build_cost: float, run_cost: float, builders: int, servers: int) -> float:
    """Trials per second when each round builds its candidates on `builders` processes, then measures them
    on `servers` devices (the scheduler alternates the two: a round's time is the sum)."""
    return 1.0 / (build_cost / builders + run_cost / servers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default=str(ROOT / "specs" / "resnet18.cnn"))
    parser.add_argument("--trials", type=int, default=64)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cnndsl-rpc-bench-"))
    port = free_port()
    processes = [start(["tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port), "--port-end",
                        str(port + 1)], work / "tracker.log")]
    try:
        time.sleep(3)
        server_port = free_port()
        processes.append(start(["tvm.exec.rpc_server", "--tracker", f"127.0.0.1:{port}", "--key", "bench",
                                "--host", "127.0.0.1", "--port", str(server_port), "--port-end",
                                str(server_port + 20)], work / "server.log"))
        time.sleep(20)  # the server imports TVM before it registers
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        run = subprocess.run([sys.executable, "-m", "cnndsl.cli", "tune", args.spec, "--trials", str(args.trials),
                              "--tune-db", str(work / "db"), "--rpc-tracker", f"127.0.0.1:{port}", "--rpc-key",
                              "bench"], capture_output=True, text=True, env=env, check=False)
    finally:
        for process in processes:
            process.kill()
    print(run.stderr + run.stdout)
    timing = re.search(r"built (\d+) candidates in (\d+) s on (\d+) worker\(s\) \(([\d.]+) worker-s each\); "
                       r"measuring and search took the other (\d+) s \(([\d.]+) s per candidate on (\d+)", run.stderr)
    if run.returncode != 0 or timing is None:
        sys.exit("the tuning run failed or printed no timing line")
    build_cost, run_cost, workers = float(timing[4]), float(timing[6]), int(timing[3])
    print(f"machine: {os.cpu_count()} cores; per candidate: {build_cost:.2f} worker-s to build, "
          f"{run_cost:.2f} s to measure on one server")
    print("| builders | servers | trials/s | speed-up over 1 server |")
    print("|---:|---:|---:|---:|")
    for builders in sorted({workers, 16}):
        base = throughput(build_cost, run_cost, builders, 1)
        for servers in (1, 4, 16):
            rate = throughput(build_cost, run_cost, builders, servers)
            print(f"| {builders} | {servers} | {rate:.2f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
