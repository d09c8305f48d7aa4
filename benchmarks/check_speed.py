"""Speed and memory of `cnndsl check` (issue: the .cnn language and `cnndsl check`). Run by hand:
`make bench` (about two minutes). Results, with the machine, go in docs/benchmarks.md.

Measured in one run, interleaved, medians of several rounds, so that ratios hold on a noisy machine:
1. whole processes: `cnndsl check` on ResNet-152, `python -c "import torch"`, and torchinfo's summary of
   an equivalent hand-written PyTorch ResNet-152 (its forward pass at 224 and 1024), with peak RSS;
2. in-process analysis time on ResNet-152 at input sizes 224 to 4096 (must not grow);
3. generated chains of 1,000 to 10,000 layers (time must grow linearly).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CNNDSL = str(Path(PY).parent / "cnndsl")
RESNET152 = str(ROOT / "specs" / "resnet152.cnn")

TORCHINFO_RESNET152 = """
import sys, torch
from torch import nn
from torchinfo import summary

class Bottleneck(nn.Module):
    def __init__(self, cin, c, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, c, 1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c)
        self.conv3, self.bn3 = nn.Conv2d(c, 4 * c, 1, bias=False), nn.BatchNorm2d(4 * c)
        self.relu = nn.ReLU()
        self.downsample = (nn.Sequential(nn.Conv2d(cin, 4 * c, 1, stride, bias=False), nn.BatchNorm2d(4 * c))
                           if stride != 1 or cin != 4 * c else None)
    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))

def stage(cin, c, n, stride):
    return nn.Sequential(Bottleneck(cin, c, stride), *[Bottleneck(4 * c, c, 1) for _ in range(n - 1)])

model = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                      stage(64, 64, 3, 1), stage(256, 128, 8, 2), stage(512, 256, 36, 2), stage(1024, 512, 3, 2),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000))
size = int(sys.argv[1])
stats = summary(model, input_size=(1, 3, size, size), verbose=0)
assert stats.total_params == 60_192_808, stats.total_params
"""


def run_process(args: list[str]) -> tuple[float, int]:
    """Wall time and peak RSS (MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{args} failed")
    return elapsed, usage.ru_maxrss // 1024


def whole_processes(rounds: int) -> None:
    commands = {
        "cnndsl check resnet152.cnn": [CNNDSL, "check", RESNET152],
        "cnndsl check resnet152.cnn --input image=3x1024x1024": [CNNDSL, "check", RESNET152, "--input",
                                                                  "image=3x1024x1024"],
        'python -c "import torch"': [PY, "-c", "import torch"],
        "torchinfo summary, ResNet-152 at 224": [PY, "-c", TORCHINFO_RESNET152, "224"],
        "torchinfo summary, ResNet-152 at 1024": [PY, "-c", TORCHINFO_RESNET152, "1024"],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    peaks: dict[str, int] = dict.fromkeys(commands, 0)
    for _ in range(rounds):
        for name, args in commands.items():  # interleaved: each round runs every command once
            elapsed, peak = run_process(args)
            times[name].append(elapsed)
            peaks[name] = max(peaks[name], peak)
    base = statistics.median(times['python -c "import torch"'])
    print(f"\n### Whole processes (median of {rounds} interleaved rounds)\n")
    print("| command | wall time (s) | vs `import torch` | peak RSS (MB) |\n|---|---:|---:|---:|")
    for name in commands:
        median = statistics.median(times[name])
        print(f"| {name} | {median:.3f} | {median / base:.2f}x | {peaks[name]} |")


def analysis_times(rounds: int) -> None:
    from cnndsl.analysis import analyse
    from cnndsl.diagnostics import DiagnosticSink
    from cnndsl.graph.build import build_graph

    print(f"\n### ResNet-152 in process (median of {rounds})\n")
    print("| input | build (parse + expand) ms | analysis passes ms | nodes |\n|---|---:|---:|---:|")
    for size in (224, 1024, 4096):
        build, passes = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            graph, sink = build_graph(Path(RESNET152), {"image": (3, size, size)}, DiagnosticSink())
            t1 = time.perf_counter()
            analyse(graph, sink)
            passes.append(time.perf_counter() - t1)
            build.append(t1 - t0)
        print(f"| 3 x {size} x {size} | {1e3 * statistics.median(build):.1f} | {1e3 * statistics.median(passes):.1f} "
              f"| {len(graph)} |")


def chain_spec(layers: int) -> str:
    body = "\n".join(f"    -> conv({8 + i % 8}, 3, padding=1) -> relu" for i in range(layers // 2))
    return f"input x: 8 x 32 x 32\noutput y = x\n{body}\n"


def chains(rounds: int) -> None:
    import cnndsl

    print(f"\n### Generated chains, cnndsl.load (parse, expand, analyse; median of {rounds})\n")
    print("| layers | seconds | microseconds per layer |\n|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for layers in (1_000, 2_000, 5_000, 10_000):
            path = Path(tmp) / f"chain{layers}.cnn"
            path.write_text(chain_spec(layers))
            samples = []
            for _ in range(rounds):
                start = time.perf_counter()
                network = cnndsl.load(path)
                samples.append(time.perf_counter() - start)
            assert len(network.graph) == layers + 1
            median = statistics.median(samples)
            print(f"| {layers:,} | {median:.3f} | {1e6 * median / layers:.0f} |")
        code, peak = run_process([CNNDSL, "check", str(Path(tmp) / "chain10000.cnn"), "--json"])
        print(f"\nWhole process `cnndsl check --json` on the 10,000-layer chain: {code:.2f} s, peak RSS {peak} MB")


def main() -> None:
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    whole_processes(rounds=5)
    analysis_times(rounds=20)
    chains(rounds=3)


if __name__ == "__main__":
    main()
