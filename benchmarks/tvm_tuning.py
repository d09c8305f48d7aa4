"""TVM against PyTorch on CPU (issue: the TVM backend). Run by hand: `make bench-tvm` (about an hour on
2 cores: most of it is tuning). Results, with the machine, go in docs/benchmarks.md.

For each network: tune with MetaSchedule (a fresh database per run unless --tune-db is given, so the
tuning time is real), then measure PyTorch eager, torch.compile, TVM untuned and TVM tuned at batch 1,
interleaved round by round (`cnndsl bench`'s measurement). Targets (issue "TVM kernels that beat
PyTorch"): resnet18 within 1.2x of PyTorch eager, mobilenet_v1 faster than it, mnist1d and lenet5 ahead,
with at most 2,000 trials and 45 minutes of tuning per network. A round's log line shows progress.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import cnndsl
from cnndsl.bench import render_table, run_benchmark

ROOT = Path(__file__).resolve().parent.parent

TRIALS = {"mnist1d": 500, "lenet5": 800, "resnet18": 2000, "mobilenet_v1": 2000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("networks", nargs="*", default=list(TRIALS))
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--tune-db", type=Path, default=None, help="reuse this database (default: a fresh one)")
    parser.add_argument("--trials", type=int, default=None, help="override the per-network trial budget")
    parser.add_argument("--batches", type=int, nargs="+", default=[1], help="batches to tune and measure")
    parser.add_argument("--layout", default="auto", choices=["auto", "nchw", "nhwc"])
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
            rows = run_benchmark(network, "llvm", tuple(args.batches), trials, database, rounds=args.rounds,
                                 with_compile=True, layout=args.layout, log=lambda line: print(line, flush=True))
            print(render_table(name, "llvm", rows), flush=True)
            print(f"(whole run {time.perf_counter() - start:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
