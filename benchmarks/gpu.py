"""TVM against PyTorch on an NVIDIA GPU (issue "TVM kernels that beat PyTorch"). Run by hand:
`make bench-gpu` on a machine with a GPU and nothing installed but what `make install` brings.

For resnet18, vgg16 and unet (at 256 x 256): build the CUDA modules (DLight's default schedules), tune
them with MetaSchedule on the GPU within a budget that fits about 10 minutes per network, and measure
PyTorch eager (CUDA, fp32), torch.compile, TVM untuned and TVM tuned at batch 1 and 16, interleaved
(`cnndsl bench`'s measurement). The table adds the fraction of the GPU's fp32 peak that the network's
largest convolution reaches, measured as a network of that one layer, tuned the same way.

Without a GPU it says so, builds the CUDA modules (code generation, and nvcc where it is installed)
and exits 0: the build path is then known good for the first GPU machine.

A GPU machine without TVM's compiler (this project's lent GPU machines: no network, 64 MiB carried, and
TVM's compiler library alone is 259 MB) runs the same measurement from a bundle built here:

    python benchmarks/gpu.py --bundle .gpu-bundle        # here: CUDA artifacts (nvcc), runtime, wheels
    # there, with .gpu-bundle carried:
    python benchmarks/gpu.py --from-bundle .gpu-bundle   # after installing the bundle's runtime (below)

The bundle holds each network's untuned CUDA artifact at batch 1 and 16 without its weights (VGG-16's
alone are 553 MB): the device side writes random weights of the recorded shapes (a kernel's speed does
not depend on the values) and times the artifacts against PyTorch eager (strict fp32, and PyTorch's
default TF32 convolutions) and torch.compile. One network (CHECK_NETWORK) travels with its weights, and
its TVM output is compared with PyTorch's on the GPU. With `--tuned-db DIR` (make bench-gpu-bundle:
tuning/h200, the records of the rounds measured on the GPU through files, docs/round-tuning.md) the
bundle also carries each network tuned from those records, and tuned with CUDA graphs, measured beside
the rest; the check network is then compiled with the records too, so its output checks tuned kernels.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cnndsl
from cnndsl.bench import Row, render_table, run_benchmark

ROOT = Path(__file__).resolve().parent.parent

NETWORKS = {"resnet18": None, "mobilenet_v2": None, "vgg16": None, "unet": (1, 256, 256)}
BATCHES = (1, 16)
CHECK_NETWORK = "mobilenet_v2"  # small enough to carry with its weights (14 MB): depthwise, BN folded, ReLU6
SM_90 = "h200"  # TVM's complete H100 target (sm_90a), the one the tuning rounds tune for
# what the device side needs beyond its own torch, numpy and networkx (cp312: the lent machines' Python)
BUNDLE_WHEELS = ("apache-tvm-ffi==0.1.14.post0", "pydantic==2.14.4", "pydantic_core==2.50.5", "lark==1.3.1",
                 "annotated-types==0.8.0", "typing-inspection==0.4.5", "typing_extensions==4.16.0",
                 "networkx==3.6.1")
# trials per network: a GPU measures a candidate in milliseconds, so building bounds the budget
TRIALS = {"resnet18": 640, "vgg16": 480, "unet": 640}
# the TVM artifacts of a network in the bundle, by the suffix of their directory
TVM_VARIANTS = {"TVM untuned": "", "TVM tuned": "_tuned", "TVM tuned, CUDA graph": "_graph"}
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
    """Code generation for every network, and the kernels compiled by nvcc where it is installed (as
    `cnndsl compile --to tvm --target cuda` does for an artifact)."""
    from cnndsl.backends.tvm.compile import compile_lowered, cuda_source, make_target, precompile_cuda
    from cnndsl.backends.tvm.lower import build_relax
    from cnndsl.runtime import KERNELS

    target = make_target(SM_90)
    for name in names:
        start = time.perf_counter()
        network = load(name)
        program = compile_lowered(build_relax(network.graph, network.weights(), 1), target)
        note = f"{(cuda_source(program) or '').count('__global__')} kernels"
        with tempfile.TemporaryDirectory() as scratch:
            if precompile_cuda(program, target, Path(scratch)):
                note += f", fatbin {(Path(scratch) / KERNELS).stat().st_size / 1e6:.1f} MB (nvcc)"
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


def build_bundle(bundle: Path, names: list[str], tuned_db: Path | None = None) -> None:
    """Everything a GPU machine with only torch and numpy needs to run the measurement (module docstring)."""
    import shutil
    import tarfile

    import numpy as np
    import tvm

    from cnndsl.runtime import PARAMS

    shutil.rmtree(bundle / "artifacts", ignore_errors=True)
    (bundle / "artifacts").mkdir(parents=True)
    jobs = [(name, load(name), batch) for name in names for batch in BATCHES]
    for name, network in [(name, load(name)) for name in names]:
        text, _ = largest_conv_spec(network)
        layer_path = bundle / f"{name}_largest_conv.cnn"
        layer_path.write_text(text)
        jobs.append((f"{name}_largest_conv", cnndsl.load(layer_path), 1))
    if tuned_db is not None:  # tuned, and tuned with CUDA graphs (the records of `make gpu-round`)
        jobs += [(f"{name}_tuned", load(name), batch) for name in names for batch in BATCHES]
        jobs += [(f"{name}_graph", load(name), batch) for name in names for batch in BATCHES]
    for label, network, batch in jobs:
        start = time.perf_counter()
        out = bundle / "artifacts" / f"{label}_b{batch}"
        tuned = tuned_db if label.endswith(("_tuned", "_graph")) else None
        network.to_tvm(SM_90, out, batch=batch, tune_db=tuned, cuda_graph=label.endswith("_graph"), pretuned=False)
        with np.load(out / PARAMS) as arrays:  # keep the shapes, leave the values behind
            shapes = {key: list(arrays[key].shape) for key in arrays.files}
        (out / PARAMS).unlink()
        (out / "param_shapes.json").write_text(json.dumps(shapes))
        print(f"{out.name}: {(out / 'model.so').stat().st_size / 1e6:.1f} MB in {time.perf_counter() - start:.0f} s",
              flush=True)
    import torch

    with tempfile.TemporaryDirectory() as scratch:
        state = Path(scratch) / "weights.pt"
        torch.save({key: torch.from_numpy(value) for key, value in check_weights(load_check()).items()}, state)
        # tuned kernels where there are records: their output is what the check compares with PyTorch's
        load_check().to_tvm(SM_90, bundle / "artifacts" / f"{CHECK_NETWORK}_check", batch=1, weights=state,
                            tune_db=tuned_db, pretuned=False)
    with tarfile.open(bundle / "artifacts.tar.xz", "w:xz") as tar:  # what travels: 5x smaller
        tar.add(bundle / "artifacts", arcname="artifacts")
    shutil.rmtree(bundle / "artifacts")
    runtime_dir = Path(tvm.__file__).parent
    with tarfile.open(bundle / "tvm-runtime.tar.xz", "w:xz") as tar:
        tar.add(runtime_dir, arcname="tvm", filter=lambda info: None if (
            info.name.endswith("libtvm_compiler.so") or "__pycache__" in info.name) else info)
    wheels = bundle / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                    "--platform", "manylinux2014_x86_64", "-d", str(wheels), *BUNDLE_WHEELS], check=True)
    total = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    print(f"bundle {bundle}: {total / 2**20:.1f} MiB", flush=True)


def load_check() -> cnndsl.Network:
    return cnndsl.load(ROOT / "specs" / f"{CHECK_NETWORK}.cnn")


def check_weights(network: cnndsl.Network) -> dict[str, Any]:
    """Weights that keep the signal alive through the whole network (He's normal initialisation of every
    convolution and linear weight), drawn the same on both machines from numpy's seeded generator.
    PyTorch's default initialisation shrinks activations about threefold per layer: MobileNet-V2's
    features underflow to exact zeros, and its output is the classifier's bias, whatever the kernels do."""
    import numpy as np

    rng = np.random.default_rng(0)
    state = network.weights(seed=0)
    for key, value in state.items():
        if key.endswith("weight") and value.ndim >= 2:
            fan_in = int(np.prod(value.shape[1:]))
            state[key] = (rng.standard_normal(value.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return state


def reweighted(artifact: Path, seed: int) -> Path:
    """The artifact with random weights of its recorded shapes, the manifest's checksum updated to them."""
    import numpy as np

    from cnndsl.runtime import GRAPH_KEY, MANIFEST, PARAMS, file_sha256

    shapes = json.loads((artifact / "param_shapes.json").read_text())
    manifest = json.loads((artifact / MANIFEST).read_text())
    rng = np.random.default_rng(seed)
    arrays = {key: (0.05 * rng.standard_normal(shape)).astype(np.float32) for key, shape in shapes.items()
              if key != GRAPH_KEY}
    np.savez(artifact / PARAMS, **arrays, **{GRAPH_KEY: np.array(manifest["graph_sha256"])})
    manifest["files"][PARAMS] = file_sha256(artifact / PARAMS)
    (artifact / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return artifact


def run_bundle(bundle: Path, names: list[str], rounds: int, with_compile: bool) -> None:
    """The device side: PyTorch eager (strict fp32 and TF32), torch.compile and TVM untuned, interleaved."""
    import numpy as np
    import torch

    from cnndsl import runtime

    peak, device = fp32_peak_tflops()
    print(f"GPU: {device}, fp32 peak {peak:.1f} TFLOPS; torch {torch.__version__}", flush=True)
    check = runtime.load(bundle / "artifacts" / f"{CHECK_NETWORK}_check")
    module = load_check().to_torch(seed=0)
    module.load_state_dict({key: torch.from_numpy(value) for key, value in check_weights(load_check()).items()})
    module = module.cuda().eval()
    x = np.random.default_rng(1).standard_normal(next(iter(check.inputs.values()))).astype(np.float32)
    torch.backends.cudnn.allow_tf32 = False
    with torch.inference_mode():
        expected = module(torch.from_numpy(x).cuda()).cpu().numpy()
    got = check(x)
    error, scale = float(np.max(np.abs(got - expected))), float(np.max(np.abs(expected)))
    agree = np.allclose(got, expected, rtol=1e-3, atol=1e-3 * scale)
    print(f"{CHECK_NETWORK} (batch 1, He-initialised weights): outputs {got.shape}, max |PyTorch| "
          f"{float(np.max(np.abs(expected))):.3e}, std {float(np.std(expected)):.3e}, max |TVM| "
          f"{float(np.max(np.abs(got))):.3e}; TVM on the GPU vs PyTorch, max |difference| {error:.2e} "
          f"({'agree' if agree else 'DIFFER'} "
          f"at 1e-3 of the output's scale)", flush=True)
    for name in names:
        if not (bundle / "artifacts" / f"{name}_b1").exists():
            continue
        start = time.perf_counter()
        network = load(name)
        rows: list[Row] = []
        for batch in BATCHES:
            models = {label: runtime.load(reweighted(bundle / "artifacts" / f"{name}{suffix}_b{batch}", batch))
                      for label, suffix in TVM_VARIANTS.items()
                      if (bundle / "artifacts" / f"{name}{suffix}_b{batch}").exists()}
            inputs = [np.random.default_rng(batch).standard_normal(shape).astype(np.float32)
                      for shape in models["TVM untuned"].inputs.values()]
            rows += measure_variants(network, models, inputs, batch, rounds, with_compile)
        print(render_table(name, "cuda (TVM untuned: DLight's default schedules; tuned: tuning/h200 records)", rows),
              flush=True)
        layer = runtime.load(reweighted(bundle / "artifacts" / f"{name}_largest_conv_b1", 0))
        text, macs = largest_conv_spec(network)
        layer_input = [np.ones(shape, np.float32) for shape in layer.inputs.values()]
        layer_rows = measure_variants(cnndsl.loads(text, name=f"{name}_largest_conv"), {"TVM untuned": layer},
                                      layer_input, 1, rounds, with_compile=False)
        print_fraction_of_peak(name, text, macs, layer_rows, peak)
        print(f"(whole run {time.perf_counter() - start:.0f} s)\n", flush=True)


def print_fraction_of_peak(name: str, text: str, macs: int, rows: list[Row], peak: float) -> None:
    """Each variant's time on the network's largest convolution as TFLOPS and as a fraction of the peak."""
    for row in rows:
        achieved = 2 * macs / (row.median_ms * 1e-3) / 1e12
        print(f"largest conv of {name} ({text.splitlines()[1].split('-> ', 1)[1]}), {row.variant}: "
              f"{row.median_ms:.3f} ms, {achieved:.2f} TFLOPS = {100 * achieved / peak:.1f}% of fp32 peak",
              flush=True)


def measure_variants(network: cnndsl.Network, models: dict[str, Any], inputs: list[Any], batch: int, rounds: int,
                     with_compile: bool) -> list[Row]:
    """PyTorch eager in strict fp32 (the baseline), with TF32 convolutions (PyTorch's default on CUDA),
    torch.compile (strict fp32) and the TVM artifact, interleaved round by round (cnndsl.bench)."""
    import torch

    from cnndsl.bench import measure_variants

    module = network.to_torch(seed=0).cuda().eval()
    tensors = [torch.from_numpy(a).cuda() for a in inputs]
    compiled = torch.compile(module) if with_compile else None

    def eager(tf32: bool, fn: Any) -> Callable[[], object]:
        def call() -> object:
            torch.backends.cudnn.allow_tf32 = tf32
            with torch.inference_mode():
                out = fn(*tensors)
            torch.cuda.synchronize()
            return out
        return call

    variants = {"PyTorch eager": eager(False, module), "PyTorch eager, TF32 convs": eager(True, module)}
    if compiled is not None:
        variants["torch.compile"] = eager(False, compiled)
    for label, model in models.items():
        variants[label] = model.on_device(*inputs)
    return measure_variants(variants, batch, rounds, {"PyTorch eager, TF32 convs": "PyTorch's default on CUDA"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("networks", nargs="*", default=list(NETWORKS))
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--trials", type=int, default=None, help="override the per-network trial budget")
    parser.add_argument("--bundle", type=Path, help="build the CUDA artifacts and runtime bundle here (no GPU)")
    parser.add_argument("--tuned-db", type=Path, default=None,
                        help="with --bundle: also carry artifacts tuned from this database, with and without CUDA "
                             "graphs")
    parser.add_argument("--from-bundle", type=Path, help="measure from a bundle on a GPU machine without TVM")
    parser.add_argument("--check-only", action="store_true", help="only the output check (bundle runs)")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out (bundle runs)")
    args = parser.parse_args()
    if args.bundle:
        build_bundle(args.bundle, args.networks, args.tuned_db)
        return
    if args.from_bundle:
        run_bundle(args.from_bundle, [] if args.check_only else args.networks, args.rounds, not args.no_compile)
        return
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
            print_fraction_of_peak(name, text, macs, layer_rows, peak)
            print(f"(whole run {time.perf_counter() - start:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
