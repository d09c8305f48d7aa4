"""Per-candidate build and measurement cost of tuning through a TVM RPC tracker, for the speed-up model of
docs/distributed-tuning.md. Run by hand (about 10 minutes on 2 cores):

    .venv/bin/python benchmarks/rpc_tuning.py [--spec specs/resnet18.cnn] [--trials 64]

Starts a tracker and one RPC server on 127.0.0.1, tunes SPEC through them into a fresh database, and
prints `cnndsl tune`'s timing line (candidates built, worker-seconds per build, the other seconds per
candidate), the server's own time per session (from its log), and the modelled trials per second for 1, 4
and 16 servers at this machine's builder count and at 16.
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
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log.open("wb"), stderr=subprocess.STDOUT)


def throughput(build: float, serve: float, local: float, builders: int, servers: int) -> float:
    """Trials per second when each round builds its candidates on `builders` processes, measures them on
    `servers` devices, and spends `local` seconds per candidate here on the search, the cost model and the
    sessions' set-up (the scheduler alternates these: a round's time is their sum)."""
    return 1.0 / (build / builders + serve / servers + local)


def serving_seconds(log: Path) -> list[float]:
    """How long the server held each session (upload, link, load, run), from its log's timestamps."""
    sessions, started = [], None
    for line in log.read_text().splitlines():
        match = re.match(r"(\S+ \S+) INFO (start|finish) serving", line)
        if match:
            at = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S.%f")
            if match[2] == "start":
                started = at
            elif started is not None:
                sessions.append((at - started).total_seconds())
                started = None
    return sessions


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
    build, rest, workers = float(timing[4]), float(timing[6]), int(timing[3])
    sessions = serving_seconds(work / "server.log")
    serve = sum(sessions) / len(sessions)
    local = max(0.0, rest - serve)
    print(f"machine: {os.cpu_count()} cores; per candidate: {build:.2f} worker-s to build, {serve:.2f} s held by "
          f"the server ({len(sessions)} sessions), {local:.2f} s of search, cost model and set-up here")
    print("| builders | servers | trials/s | speed-up over 1 server |")
    print("|---:|---:|---:|---:|")
    for builders in sorted({workers, 16}):
        base = throughput(build, serve, local, builders, 1)
        for servers in (1, 4, 16):
            rate = throughput(build, serve, local, builders, servers)
            print(f"| {builders} | {servers} | {rate:.3f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
