"""Per tuned task: how close to this CPU's fp32 peak its best kernel runs, beside PyTorch's time for the
same layer. Run by hand after tuning (`cnndsl tune` or `make bench-tvm --tune-db DIR`):

    python benchmarks/tvm_tasks.py specs/resnet18.cnn --tune-db DIR

The peak is measured here (`cpu_peak.py`: vector FMA chains on every core). A task's FLOPs are TVM's
count of its TIR (`estimate_tir_flops`), its latency the best in the database. A 2-D convolution task is
matched to the spec's layers by its data, weight and output shapes, and that layer is timed alone in
PyTorch (`torch.nn.functional.conv2d`, same threads, batch 1, median of 50 calls after warm-up). For a
convolution, "% of peak" counts the direct convolution's FLOPs, whatever algorithm ran (a Winograd
kernel does fewer, so it can pass 100%).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from cpu_peak import measure_peak_gflops

import cnndsl
from cnndsl.ops.conv import ConvAttrs

ROOT = Path(__file__).resolve().parent.parent


def conv_layers(network: cnndsl.Network) -> dict[tuple[int, ...], dict[str, object]]:
    """(H, W, C_in, kh, kw, C_out, Ho, Wo) -> the layer's PyTorch conv2d arguments, for every 2-D conv."""
    graph, found = network.graph, {}
    for node in graph.nodes():
        a = graph.facts(node.name).attrs
        if not isinstance(a, ConvAttrs) or len(a.out) != 3:
            continue
        shape, source, g, groups = a.out, a.x, a.geometry, a.groups
        key = (source[1], source[2], source[0], *g.kernel, shape[0], shape[1], shape[2])
        found.setdefault(key, {"x": (1, *source), "w": (shape[0], source[0] // groups, *g.kernel),
                               "stride": g.stride, "padding": g.padding, "dilation": g.dilation,
                               "groups": groups, "name": node.name, "out_hw": (shape[1], shape[2])})
    return found


def torch_conv_ms(layer: dict[str, object]) -> float:
    import torch
    import torch.nn.functional as F

    x, w = torch.randn(*layer["x"]), torch.randn(*layer["w"])  # type: ignore[misc]
    (top, bottom), (left, right) = layer["padding"]  # type: ignore[misc]
    symmetric = top == bottom and left == right
    padding = (top, left) if symmetric else 0

    def call() -> torch.Tensor:
        y = x if symmetric else F.pad(x, (left, right, top, bottom))
        return F.conv2d(y, w, stride=layer["stride"], padding=padding, dilation=layer["dilation"],
                        groups=layer["groups"])

    with torch.inference_mode():
        for _ in range(5):
            call()
        samples = []
        for _ in range(50):
            start = time.perf_counter()
            call()
            samples.append(1e3 * (time.perf_counter() - start))
    return statistics.median(samples)


def task_conv_key(task: object) -> tuple[int, ...] | None:
    """The NHWC conv signature of a task from its PrimFunc's buffers: data (1,H,W,C), weight (kh,kw,C/g,O)
    or Winograd's transformed weight (6,6,O,C), output (1,Ho,Wo,O); None for other tasks."""
    name = task.task_name  # type: ignore[attr-defined]
    if "conv2d" not in name:
        return None
    func = next(iter(task.dispatched[0].functions.values()))  # type: ignore[attr-defined]
    shapes = [tuple(int(d) for d in p.shape) for p in func.params]  # TVM 0.27: params are the buffers
    data, weight, out = shapes[0], shapes[1], shapes[-1]
    if len(data) != 4 or len(weight) != 4 or len(out) != 4:
        return None
    kernel = (3, 3) if "winograd" in name else (weight[0], weight[1])
    return (data[1], data[2], data[3], *kernel, out[3], out[1], out[2])


def direct_flops(layer: dict[str, object]) -> float:
    """2 x the multiply-accumulates of the layer as a direct convolution (batch 1)."""
    _, c_in, *_ = layer["x"]  # type: ignore[misc]
    out_c, per_group, kh, kw = layer["w"]  # type: ignore[misc]
    return 2.0 * out_c * per_group * kh * kw * layer["out_hw"][0] * layer["out_hw"][1]  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", type=Path)
    parser.add_argument("--tune-db", type=Path, required=True)
    parser.add_argument("--layout", default="auto")
    parser.add_argument("--winograd", default="auto", choices=["auto", "on", "off"])
    args = parser.parse_args()
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops

    from cnndsl.backends.tvm.compile import make_target
    from cnndsl.backends.tvm.lower import build_relax
    from cnndsl.backends.tvm.pipeline import choose_layout, choose_winograd, fuse, prepare
    from cnndsl.backends.tvm.tune import open_database

    network = cnndsl.load(args.spec)
    target = make_target("llvm")
    layout = choose_layout(args.layout, target, tuned=True)
    winograd = choose_winograd(args.winograd, layout, target, tuned=True)
    module = prepare(build_relax(network.graph, network.weights(), 1), layout, winograd)
    tasks = ms.relax_integration.extract_tasks(fuse(module, target), target)
    database = open_database(args.tune_db)
    peak = measure_peak_gflops()
    layers = conv_layers(network)
    print(f"{network.name}, {layout.upper()}{', Winograd' if winograd else ''}, fp32 peak measured here: "
          f"{peak:.1f} GFLOPS\n")
    print("| task | runs per inference | GFLOP | TVM best (ms) | TVM % of peak | PyTorch same layer (ms) | "
          "PyTorch % of peak |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    total_tvm = total_torch = 0.0
    for task in sorted(tasks, key=lambda t: -estimate_tir_flops(t.dispatched[0]) * int(t.weight)):
        flops = estimate_tir_flops(task.dispatched[0])
        record = database.query_tuning_record(task.dispatched[0], target, task.task_name)
        best = 1e3 * min(float(s) for s in record.run_secs) if record is not None and record.run_secs else None
        key = task_conv_key(task)
        torch_ms = torch_conv_ms(layers[key]) if key in layers else None
        if key in layers:  # a convolution's work is its direct FLOPs, whatever algorithm computes it
            flops = direct_flops(layers[key])
        weight = int(task.weight)
        total_tvm += (best or 0.0) * weight
        total_torch += (torch_ms or 0.0) * weight
        tvm_cells = (f"{best:.3f} | {100 * flops / (best * 1e-3) / 1e9 / peak:.0f}%" if best else "untuned | -")
        torch_cells = (f"{torch_ms:.3f} | {100 * flops / (torch_ms * 1e-3) / 1e9 / peak:.0f}%" if torch_ms
                       else "- | -")
        print(f"| {task.task_name} | {weight} | {flops / 1e9:.3f} | {tvm_cells} | {torch_cells} |")
    print(f"\nweighted sums: TVM {total_tvm:.2f} ms over all tasks; PyTorch {total_torch:.2f} ms over the "
          "convolutions it was matched to")


if __name__ == "__main__":
    main()
