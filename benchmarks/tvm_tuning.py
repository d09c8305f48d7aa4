"""TVM against PyTorch on CPU (issue: the TVM backend). Run by hand: `make bench-tvm` (about an hour on
2 cores: most of it is tuning). Results, with the machine, go in docs/benchmarks.md.

For each network: tune with MetaSchedule (a fresh database per run unless --tune-db is given, so the
tuning time is real), then measure PyTorch eager, torch.compile, TVM untuned and TVM tuned at batch 1,
interleaved round by round (`cnndsl bench`'s measurement). Target: tuned TVM at least as fast as
PyTorch eager on mnist1d, lenet5 and resnet18 with at most 2,000 trials each.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cnndsl  # noqa: E402
from cnndsl.bench import render_table, run_benchmark  # noqa: E402

TRIALS = {"mnist1d": 500, "lenet5": 800, "resnet18": 2000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("networks", nargs="*", default=list(TRIALS))
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--tune-db", type=Path, default=None, help="reuse this database (default: a fresh one)")
    parser.add_argument("--trials", type=int, default=None, help="override the per-network trial budget")
    args = parser.parse_args()
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"Python {platform.python_version()}, torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.networks:
            database = args.tune_db or Path(scratch) / name
            start = time.perf_counter()
            network = cnndsl.load(ROOT / "specs" / f"{name}.cnn")
            trials = args.trials or TRIALS[name]
            rows = run_benchmark(network, "llvm", (1,), trials, database, rounds=args.rounds, with_compile=True)
            print(render_table(name, "llvm", rows), flush=True)
            print(f"(whole run {time.perf_counter() - start:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
