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


def _synced(fn: Callable[..., object], inputs: list[Any], device: str) -> Callable[[], object]:
    import torch

    def call() -> object:
        out = fn(*inputs)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return call


def _first(result: Any) -> np.ndarray:
    return np.asarray(result[0] if isinstance(result, tuple) else result)


def run_benchmark(network: Any, target: str, batches: tuple[int, ...], trials: int, tune_db: Path | None,
                  rounds: int, with_compile: bool, layout: str = "auto", log: Callable[[str], None] | None = None,
                  winograd: str = "auto") -> list[Row]:
    """Each batch's rows: the PyTorch module (`network.to_torch()`), its torch.compile, and the TVM artifacts
    a user deploys (`network.to_tvm()`, untuned and with the tuning database's records, loaded by
    cnndsl.runtime), all with the same weights; tuning first with `trials` > 0 (`network.tune()`)."""
    import tempfile

    import torch

    from .api import tuning_database, tuning_summary
    from .backends.torch.export import example_inputs
    from .diagnostics import UsageError

    device = "cuda" if target == "cuda" else "cpu"
    rows: list[Row] = []
    module = network.to_torch(seed=0).to(device)
    database = tuning_database(tune_db)
    with tempfile.TemporaryDirectory(prefix="cnndsl-bench-") as scratch:
        for batch in batches:
            inputs = [x.to(device) for x in example_inputs(network.graph, batch=batch)]
            numpy_inputs = [x.cpu().numpy() for x in inputs]
            variants: dict[str, Callable[[], object]] = {"PyTorch eager": _synced(module, inputs, device)}
            if with_compile:
                variants["torch.compile"] = _synced(torch.compile(module), inputs, device)
            models = {"TVM untuned": network.to_tvm(target, Path(scratch) / f"untuned-{batch}", batch,
                                                    pretuned=False, winograd=winograd).load()}
            notes: dict[str, str] = {}
            if trials > 0:
                report = network.tune(target, trials, database, batch, layout, winograd, log=log)
                notes["TVM tuned"] = report.summary()
            try:
                tuned = bool(tuning_summary(database))
            except UsageError:  # no database there yet
                tuned = False
            if tuned:
                models["TVM tuned"] = network.to_tvm(target, Path(scratch) / f"tuned-{batch}", batch, tune_db=database,
                                                     layout=layout, winograd=winograd).load()
                notes.setdefault("TVM tuned", f"records from {database}")
            with torch.inference_mode():
                out = module(*inputs)
                reference = (out[0] if isinstance(out, tuple) else out).cpu().numpy()
            for label, model in models.items():
                variants[label] = model.on_device(*numpy_inputs)
                if not np.allclose(_first(model(*numpy_inputs)), reference, rtol=1e-3, atol=1e-3):
                    notes[label] = "OUTPUT DIFFERS FROM PYTORCH " + notes.get(label, "")
            rows += measure_variants(variants, batch, rounds, notes)
    return rows


def measure_variants(variants: dict[str, Callable[[], object]], batch: int, rounds: int,
                     notes: dict[str, str]) -> list[Row]:
    """Time each variant (a call that returns when its work is done), interleaved round by round; the
    rows give each one's median, spread and ratio to the variant `PyTorch eager`."""
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
