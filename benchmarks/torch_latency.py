"""Forward latency of compiled specs against torchvision's hand-written PyTorch (issue: the PyTorch backend).
Run by hand: `make bench-torch` (about 10 minutes on 2 cores). Results go in docs/benchmarks.md.

For ResNet-18 and VGG-16 at batch 1 and 16: the module `cnndsl` compiles from the spec, torchvision's own
model (torchvision.models, written the ordinary way) with the same weights loaded strictly (the spec
keeps torchvision's names), and `torch.compile` of the compiled module. Inference mode, fp32, CPU. The
variants run interleaved, round by round, so drift on a shared machine hits them alike; the table gives the
median over rounds and the spread (min-max of the round medians), and the ratio to torchvision's module
(target 1.00 +- 0.03).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision import models

import cnndsl
from cnndsl.backends.torch.export import example_inputs

ROOT = Path(__file__).resolve().parent.parent

NETWORKS = {"resnet18": models.resnet18, "vgg16": models.vgg16}


def timed(fn: Callable[[], object], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations


def measure(name: str, batch: int, rounds: int, with_compile: bool) -> list[tuple[str, float, float, float]]:
    network = cnndsl.load(ROOT / "specs" / f"{name}.cnn")
    ours = network.to_torch(seed=0)
    reference = NETWORKS[name]().eval()
    reference.load_state_dict(ours.state_dict(), strict=True)
    inputs = example_inputs(network.graph, batch=batch)
    variants: dict[str, Callable[[], object]] = {
        "torchvision nn.Module": lambda: reference(*inputs),
        "cnndsl to_torch()": lambda: ours(*inputs),
    }
    if with_compile:
        compiled = torch.compile(ours)
        variants["torch.compile(cnndsl module)"] = lambda: compiled(*inputs)
    with torch.inference_mode():
        torch.testing.assert_close(ours(*inputs), reference(*inputs), rtol=0, atol=1e-4)
        for fn in variants.values():  # warm-up (and torch.compile's compilation)
            fn(), fn()
        once = timed(variants["cnndsl to_torch()"], 1)
        iterations = max(1, int(0.5 / once))  # about half a second per variant per round
        samples: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(rounds):
            for label, fn in variants.items():
                samples[label].append(timed(fn, iterations))
    base = statistics.median(samples["torchvision nn.Module"])
    return [(label, statistics.median(s), min(s), max(s)) for label, s in samples.items()] + [("base", base, 0, 0)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (needs a C++ compiler)")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"Python {platform.python_version()}, torch {torch.__version__}")
    print("| network | batch | variant | median (ms) | spread (ms) | vs torchvision |")
    print("|---|---:|---|---:|---:|---:|")
    for name in NETWORKS:
        for batch in (1, 16):
            rows = measure(name, batch, args.rounds, not args.no_compile)
            base = rows[-1][1]
            for label, median, low, high in rows[:-1]:
                print(f"| {name} | {batch} | {label} | {1e3 * median:.2f} | {1e3 * low:.2f}-{1e3 * high:.2f} "
                      f"| {median / base:.3f}x |", flush=True)


if __name__ == "__main__":
    main()
