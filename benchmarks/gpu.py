"""TVM against PyTorch on an NVIDIA GPU (issue "TVM kernels that beat PyTorch"). Run by hand:
`make bench-gpu` on a machine with a GPU and nothing installed but what `make install` brings.

For resnet18, vgg16 and unet (at 256 x 256): build the CUDA modules (DLight's default schedules), tune
them with MetaSchedule on the GPU within a budget that fits about 10 minutes per network, and measure
PyTorch eager (CUDA, fp32), torch.compile, TVM untuned and TVM tuned at batch 1 and 16, interleaved
(`cnndsl bench`'s measurement). The table adds the fraction of the GPU's fp32 peak that the network's
largest convolution reaches, measured as a network of that one layer, tuned the same way.

Without a GPU it says so, builds the CUDA modules (code generation, and nvcc where it is installed)
and exits 0: the build path is then known good for the first GPU machine.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cnndsl  # noqa: E402
from cnndsl.bench import render_table, run_benchmark  # noqa: E402

NETWORKS = {"resnet18": None, "vgg16": None, "unet": (1, 256, 256)}
# trials per network: a GPU measures a candidate in milliseconds, so building bounds the budget
TRIALS = {"resnet18": 640, "vgg16": 480, "unet": 640}
FP32_LANES_PER_SM = 128  # Ampere and Hopper: 128 fp32 FMA lanes per SM


def gpu_present() -> bool:
    import torch
    import tvm

    return bool(torch.cuda.is_available() and tvm.cuda(0).exist)


def load(name: str) -> cnndsl.Network:
    network = cnndsl.load(ROOT / "specs" / f"{name}.cnn")
    if NETWORKS[name] is None:
        return network
    return cnndsl.load(ROOT / "specs" / f"{name}.cnn", inputs={next(iter(network.graph.inputs)): NETWORKS[name]})


def build_only(names: list[str]) -> None:
    """Code generation for every network, and nvcc on the kernels where nvcc is installed."""
    from cnndsl.backends.tvm.compile import compile_lowered, make_target, nvcc_available
    from cnndsl.backends.tvm.lower import build_relax

    target = make_target('{"kind": "cuda", "arch": "sm_90"}')
    for name in names:
        start = time.perf_counter()
        network = load(name)
        program = compile_lowered(build_relax(network.graph, network.weights(), 1), target)
        source = next(m for host in program.executable.mod.imports for m in host.imports
                      if m.kind == "cuda").inspect_source("cuda")
        note = f"{source.count('__global__')} kernels"
        if nvcc_available():
            from tvm.support.nvcc import compile_cuda

            with target:
                binary = compile_cuda(source, target_format="fatbin", compiler="nvcc")
            note += f", fatbin {len(binary) / 1e6:.1f} MB (nvcc)"
        print(f"{name}: CUDA module built for sm_90 ({note}) in {time.perf_counter() - start:.0f} s", flush=True)


def fp32_peak_tflops() -> tuple[float, str]:
    """SMs x fp32 lanes x 2 flops x the maximum SM clock (nvidia-smi)."""
    import torch

    properties = torch.cuda.get_device_properties(0)
    clock = subprocess.run(["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, check=False).stdout.split()
    mhz = float(clock[0]) if clock else 1980.0
    peak = properties.multi_processor_count * FP32_LANES_PER_SM * 2 * mhz * 1e6 / 1e12
    return peak, f"{properties.name}: {properties.multi_processor_count} SMs at {mhz:.0f} MHz"


def largest_conv_spec(network: cnndsl.Network) -> tuple[str, int]:
    """A one-layer spec of the network's convolution with the most MACs, and its MACs at batch 1."""
    report = network.report()
    layer = max((row for row in report.layers if row.op.startswith("conv")), key=lambda row: row.macs or 0)
    node = network.graph.node(layer.name)
    source = network.graph.node(node.inputs[0])
    shape = network.graph.shape(source.name)
    params = node.params
    text = (f"input x: {' x '.join(map(str, shape))}\noutput y = x -> conv({params.channels}, {params.kernel}, "
            f"stride={params.stride}, padding={params.padding}, bias={str(params.bias).lower()})\n")
    return text, int(layer.macs or 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("networks", nargs="*", default=list(NETWORKS))
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--trials", type=int, default=None, help="override the per-network trial budget")
    args = parser.parse_args()
    import torch

    print(f"host: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"torch {torch.__version__}", flush=True)
    if not gpu_present():
        print("no CUDA GPU here: building the CUDA modules only (code generation), no timings", flush=True)
        build_only(args.networks)
        return
    peak, device = fp32_peak_tflops()
    print(f"GPU: {device}, fp32 peak {peak:.1f} TFLOPS", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.networks:
            start = time.perf_counter()
            network = load(name)
            trials = args.trials or TRIALS[name]
            rows = run_benchmark(network, "cuda", (1, 16), trials, Path(scratch) / name, rounds=args.rounds,
                                 with_compile=True, log=lambda line: print(line, flush=True))
            print(render_table(name, "cuda", rows), flush=True)
            text, macs = largest_conv_spec(network)
            layer_path = Path(scratch) / f"{name}_largest_conv.cnn"
            layer_path.write_text(text)
            layer_rows = run_benchmark(cnndsl.load(layer_path), "cuda", (1,), 128, Path(scratch) / f"{name}_conv",
                                       rounds=args.rounds, with_compile=False)
            for row in layer_rows:
                achieved = 2 * macs / (row.median_ms * 1e-3) / 1e12
                print(f"largest conv of {name} ({text.splitlines()[1].split('-> ', 1)[1]}), {row.variant}: "
                      f"{row.median_ms:.3f} ms, {achieved:.2f} TFLOPS = {100 * achieved / peak:.1f}% of fp32 peak",
                      flush=True)
            print(f"(whole run {time.perf_counter() - start:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
