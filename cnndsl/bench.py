"""`cnndsl bench`: one network's latency under PyTorch eager, torch.compile, TVM untuned and TVM tuned,
with the same weights, measured interleaved round by round in one process (so drift on a shared
machine hits every variant alike). Reports the median over rounds, the spread (min-max of the round
means) and the ratio to PyTorch eager."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TARGET_SECONDS_PER_SAMPLE = 0.2


@dataclass
class Row:
    batch: int
    variant: str
    median_ms: float
    low_ms: float
    high_ms: float
    ratio: float
    note: str = ""


def _tvm_runner(lowered: Any, target_name: str, database: Any, inputs: list[np.ndarray], layout: str = "auto",
                winograd: str = "auto") -> tuple[Callable[[], object], Callable[[], np.ndarray]]:
    import tvm
    from tvm import relax

    from .backends.tvm.compile import compile_lowered, make_target

    target = make_target(target_name)
    program = compile_lowered(lowered, target, database, layout, winograd)
    device = tvm.cuda(0) if target.kind.name == "cuda" else tvm.cpu(0)
    vm = relax.VirtualMachine(program.executable, device)
    args = [tvm.runtime.tensor(a, device) for a in inputs] + [tvm.runtime.tensor(v, device)
                                                                for v in program.param_values]
    main = vm["main"]

    def call() -> object:
        out = main(*args)
        device.sync()
        return out

    def first_output() -> np.ndarray:
        out = main(*args)
        return (out if len(lowered.output_shapes) == 1 else out[0]).numpy()

    return call, first_output


def _synced(fn: Callable[..., object], inputs: list[Any], device: str) -> Callable[[], object]:
    import torch

    def call() -> object:
        out = fn(*inputs)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return call


def run_benchmark(network: Any, target: str, batches: tuple[int, ...], trials: int, tune_db: Path | None,
                  rounds: int, with_compile: bool, layout: str = "auto", log: Callable[[str], None] | None = None,
                  winograd: str = "auto") -> list[Row]:
    import torch

    from .backends.torch.export import example_inputs
    from .backends.tvm import check_indexable
    from .backends.tvm.compile import make_target
    from .backends.tvm.lower import build_relax, check_supported
    from .backends.tvm.pipeline import prepared
    from .backends.tvm.tune import default_database_dir, open_database, tune

    check_supported(network.graph)
    for batch in batches:
        check_indexable(network.graph, batch)
    device = "cuda" if target == "cuda" else "cpu"
    rows: list[Row] = []
    module = network.to_torch(seed=0).to(device)
    weights = {key: tensor.cpu().numpy() for key, tensor in module.state_dict().items()}
    for batch in batches:
        inputs = [x.to(device) for x in example_inputs(network.graph, batch=batch)]
        numpy_inputs = [x.cpu().numpy() for x in inputs]

        variants: dict[str, Callable[[], object]] = {"PyTorch eager": _synced(module, inputs, device)}
        if with_compile:
            variants["torch.compile"] = _synced(torch.compile(module), inputs, device)
        # one lowering per batch serves the untuned build, tuning and the tuned build (same weights)
        lowered = build_relax(network.graph, weights, batch)
        untuned, untuned_out = _tvm_runner(lowered, target, None, numpy_inputs)
        variants["TVM untuned"] = untuned
        notes: dict[str, str] = {}
        database_dir = tune_db or default_database_dir()
        if trials > 0:
            relax_module, _ = prepared(lowered, make_target(target), layout, winograd, tuned=True)
            _, report = tune(relax_module, make_target(target), database_dir, trials, log=log)
            notes["TVM tuned"] = report.summary()
        database = open_database(database_dir)
        if len(database) > 0:
            tuned, tuned_out = _tvm_runner(lowered, target, database, numpy_inputs, layout, winograd)
            variants["TVM tuned"] = tuned
            notes.setdefault("TVM tuned", f"records from {database_dir}")
        with torch.inference_mode():
            reference = module(*inputs)
            reference = (reference[0] if isinstance(reference, tuple) else reference).cpu().numpy()
            for label, out in [("TVM untuned", untuned_out)] + ([("TVM tuned", tuned_out)]
                                                                if "TVM tuned" in variants else []):
                if not np.allclose(out(), reference, rtol=1e-3, atol=1e-3):
                    notes[label] = "OUTPUT DIFFERS FROM PYTORCH " + notes.get(label, "")
            rows += _measure(variants, batch, rounds, notes)
    return rows


def _measure(variants: dict[str, Callable[[], object]], batch: int, rounds: int, notes: dict[str, str]) -> list[Row]:
    iterations = {}
    for label, fn in variants.items():
        fn(), fn()  # warm-up (torch.compile compiles here)
        start = time.perf_counter()
        fn()
        iterations[label] = max(1, int(TARGET_SECONDS_PER_SAMPLE / max(time.perf_counter() - start, 1e-6)))
    samples: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(rounds):
        for label, fn in variants.items():
            start = time.perf_counter()
            for _ in range(iterations[label]):
                fn()
            samples[label].append(1e3 * (time.perf_counter() - start) / iterations[label])
    base = statistics.median(samples["PyTorch eager"])
    return [Row(batch, label, statistics.median(s), min(s), max(s), statistics.median(s) / base,
                notes.get(label, "")) for label, s in samples.items()]


def render_table(network: str, target: str, rows: list[Row]) -> str:
    lines = [f"{network} on {target} (fp32; median of interleaved rounds, spread = min-max of round means)", "",
             "| batch | variant | median (ms) | spread (ms) | vs PyTorch eager | note |",
             "|---:|---|---:|---:|---:|---|"]
    lines += [f"| {r.batch} | {r.variant} | {r.median_ms:.3f} | {r.low_ms:.3f}-{r.high_ms:.3f} | {r.ratio:.2f}x | "
              f"{r.note} |" for r in rows]
    return "\n".join(lines)
