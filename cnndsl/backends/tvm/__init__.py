"""The TVM backend: a checked network lowered directly to Relax, compiled (optionally tuned with
MetaSchedule) for CPU or CUDA, and written as a deployable artifact that `cnndsl.runtime` runs."""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tvm

from ...diagnostics import UsageError
from ...graph.model import Graph
from .build import Lowered, build_relax, check_supported, torch_state
from .compile import check_artifact_target, make_target, write_artifact
from .pipeline import LAYOUT_CHOICES, Layout, compile_program, prepared
from .tune import TuningReport, default_database_dir, tune

__all__ = ["LAYOUT_CHOICES", "Compiled", "Lowered", "build_relax", "check_indexable", "check_supported",
           "compile_network", "default_database_dir", "graph_hash", "make_target", "tune_network"]


@dataclass
class Compiled:
    path: Path
    target: str
    layout: str
    tuning: TuningReport | None
    seconds: float


def _prepared(network: object, target_name: str, batch: int, seed: int | None, weights: str | None, layout: str,
              winograd: str, tuned: bool) -> tuple[Graph, tvm.target.Target, Lowered, Layout, tvm.IRModule]:
    graph: Graph = network.graph  # type: ignore[attr-defined]
    check_supported(graph)  # before any weights are drawn: every unsupported op, located
    check_indexable(graph, batch)
    target = make_target(target_name)
    lowered = build_relax(graph, torch_state(network, seed, weights), batch)
    module, chosen = prepared(lowered, target, layout, winograd, tuned)
    return graph, target, lowered, chosen, module


INT32_ELEMENTS = 2**31 - 1


def check_indexable(graph: Graph, batch: int) -> None:
    """UsageError when a tensor at this batch has more elements than TVM's kernels index (they use 32-bit
    indices for shapes that fit them, and fail deep in lowering on one that does not)."""
    largest, name = 0, ""
    for node in graph.nodes():
        shape = graph.meta(node.name).get("shape") or ()
        elements = batch * math.prod(shape)
        if elements > largest:
            largest, name = elements, node.name
    if largest > INT32_ELEMENTS:
        raise UsageError(f"at batch {batch:,}, `{name}` has {largest:,} elements; TVM kernels index tensors of at "
                         f"most {INT32_ELEMENTS:,} (2^31 - 1): choose a smaller --batch")


def compile_network(network: object, target_name: str, out_dir: Path, batch: int = 1, seed: int | None = 0,
                    weights: str | None = None, trials: int = 0, database_dir: Path | None = None,
                    log: Callable[[str], None] | None = None, layout: str = "auto",
                    trials_per_task: int | None = None, winograd: str = "auto") -> Compiled:
    """Lower, (tune,) compile and write the artifact of a checked `cnndsl.Network`. Tuning records are
    applied when tuning now (`trials`) or when a database is named (`database_dir`, from `cnndsl tune`);
    `log` gets tuning's progress lines."""
    start = time.perf_counter()
    check_artifact_target(out_dir)  # a bad -o fails now, not after minutes of tuning
    tuned = trials > 0 or database_dir is not None
    graph, target, lowered, chosen, module = _prepared(network, target_name, batch, seed, weights, layout, winograd,
                                                       tuned)
    report, database = None, None
    if tuned:
        database, report = tune(module, target, database_dir or default_database_dir(), trials,
                                seed=seed or 0, log=log, trials_per_task=trials_per_task)
        if trials <= 0 and report.left_untuned:
            warnings.warn(f"{report.left_untuned} of {report.tasks} kernels have no tuning record in {database_dir} "
                          f"for this target, batch and layout: they keep default schedules (tune them with "
                          f"`cnndsl tune` and the same options)", stacklevel=2)
    program = compile_program(module, target, chosen, database)
    path = write_artifact(program, lowered, target, out_dir, graph.name, graph_hash(graph),
                          report if trials > 0 else None)
    return Compiled(path, str(target), chosen, report, time.perf_counter() - start)


def tune_network(network: object, target_name: str, trials: int, database_dir: Path | None = None,
                 batch: int = 1, layout: str = "auto", trials_per_task: int | None = None,
                 log: Callable[[str], None] | None = None, winograd: str = "auto") -> TuningReport:
    """Tune the kernels `compile_network` would build for `target_name` (the same layout and weights
    folding, so the records match) into the database, without compiling."""
    _, target, _, _, module = _prepared(network, target_name, batch, 0, None, layout, winograd, tuned=True)
    _, report = tune(module, target, database_dir or default_database_dir(), trials, trials_per_task=trials_per_task,
                     log=log)
    return report


def graph_hash(graph: Graph) -> str:
    """sha256 of the expanded network (names, ops, parameters, wiring, shapes): what the artifact was
    compiled from, independent of comments and formatting in the spec."""
    digest = hashlib.sha256()
    for node in graph.nodes():
        params = node.params.model_dump(mode="json") if node.params is not None else None
        digest.update(json.dumps([node.name, node.op, params, node.inputs, graph.meta(node.name)["shape"]],
                                 sort_keys=True, default=str).encode())
    return digest.hexdigest()

