"""Speed and memory of `cnndsl check` (issue: the .cnn language and `cnndsl check`). Run by hand:
`make bench` (about two minutes). Results, with the machine, go in docs/benchmarks.md.

Measured in one run, interleaved, medians of several rounds, so that ratios hold on a noisy machine:
1. whole processes: `cnndsl check` on ResNet-152 and on a generated 10,000-layer chain,
   `python -c "import torch"`, and torchinfo's summary of an equivalent hand-written PyTorch ResNet-152
   (its forward pass at 224 and 1024), with peak RSS (needs GNU time, Debian package `time`);
2. in-process analysis time on ResNet-152 at input sizes 224 to 4096 (must not grow);
3. generated chains of 1,000 to 10,000 layers (time must grow linearly), and the same 10,000 layers
   written as one statement each;
4. parsing alone (text -> syntax tree) of the bundled specs and of the generated 10,000 layers.
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


GNU_TIME = "/usr/bin/time"  # Debian package `time`


def run_process(args: list[str]) -> tuple[float, int]:
    """Wall time and peak RSS (MB) of one child process. The peak comes from GNU time run inside the
    child: the rusage a parent gets from wait4 can include the parent's own memory at fork time."""
    start = time.perf_counter()
    proc = subprocess.run([GNU_TIME, "-f", "%M", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed: {proc.stderr[-500:]}")
    return elapsed, int(proc.stderr.strip().splitlines()[-1]) // 1024


def whole_processes(rounds: int, chain: Path) -> None:
    commands = {
        "cnndsl check resnet152.cnn": [CNNDSL, "check", RESNET152],
        "cnndsl check resnet152.cnn --input image=3x1024x1024": [CNNDSL, "check", RESNET152, "--input",
                                                                  "image=3x1024x1024"],
        'python -c "import torch"': [PY, "-c", "import torch"],
        "torchinfo summary, ResNet-152 at 224": [PY, "-c", TORCHINFO_RESNET152, "224"],
        "torchinfo summary, ResNet-152 at 1024": [PY, "-c", TORCHINFO_RESNET152, "1024"],
        "cnndsl check chain10000.cnn (10,000 layers)": [CNNDSL, "check", str(chain)],
        "cnndsl check chain10000.cnn --json": [CNNDSL, "check", str(chain), "--json"],
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
    from cnndsl.graph.elaborate import build_graph

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


def statements_spec(layers: int) -> str:
    """The same layers as chain_spec, one statement each (`t2 = t1 -> relu`)."""
    body = "\n".join(f"t{2 * i + 1} = t{2 * i} -> conv({8 + i % 8}, 3, padding=1)\nt{2 * i + 2} = t{2 * i + 1} -> relu"
                     for i in range(layers // 2))
    return f"input t0: 8 x 32 x 32\n{body}\noutput y = t{layers}\n"


def chains(rounds: int) -> None:
    import cnndsl

    print(f"\n### Generated chains, cnndsl.load (parse, expand, analyse; median of {rounds})\n")
    print("One chain statement (`x -> conv -> relu -> ...`), and the same layers as one statement each.\n")
    print("| layers | seconds | microseconds per layer |\n|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for layers, form, make in [(n, "chain", chain_spec) for n in (1_000, 2_000, 5_000, 10_000)] + [
                (10_000, "statements", statements_spec)]:
            path = Path(tmp) / f"{form}{layers}.cnn"
            path.write_text(make(layers))
            samples = []
            for _ in range(rounds):
                start = time.perf_counter()
                network = cnndsl.load(path)
                samples.append(time.perf_counter() - start)
            assert len(network.graph) == layers + 1
            median = statistics.median(samples)
            print(f"| {layers:,} ({form}) | {median:.3f} | {1e6 * median / layers:.0f} |")


def parse_times(rounds: int) -> None:
    from cnndsl.syntax.parse import parse
    from cnndsl.syntax.source import SourceFile

    print(f"\n### Parsing alone (text -> syntax tree; median of {rounds})\n")
    print("| input | ms |\n|---|---:|")
    zoo = [(path.name, path.read_text()) for path in sorted((ROOT / "specs").glob("*.cnn"))]
    cases: list[tuple[str, list[tuple[str, str]]]] = [
        (f"the {len(zoo)} bundled specs", zoo), ("10,000 layers (chain)", [("chain.cnn", chain_spec(10_000))]),
        ("10,000 layers (statements)", [("statements.cnn", statements_spec(10_000))])]
    for label, texts in cases:
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            for name, text in texts:
                parse(SourceFile(name, text))
            samples.append(time.perf_counter() - start)
        print(f"| {label} | {1e3 * statistics.median(samples):.1f} |")


def main() -> None:
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        chain = Path(tmp) / "chain10000.cnn"
        chain.write_text(chain_spec(10_000))
        whole_processes(rounds=5, chain=chain)  # first: this process must stay small while it forks children
    analysis_times(rounds=20)
    chains(rounds=3)
    parse_times(rounds=7)


if __name__ == "__main__":
    main()
