"""The TVM backend: a checked network lowered directly to Relax, compiled (optionally tuned with
MetaSchedule) for CPU or CUDA, and written as a deployable artifact that `cnndsl.runtime` runs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ...graph.model import Graph
from .build import Lowered, build_relax, check_supported, torch_state
from .compile import compile_lowered, make_target, write_artifact
from .tune import TuningReport, default_database_dir, tune

__all__ = ["Compiled", "Lowered", "build_relax", "check_supported", "compile_network", "default_database_dir",
           "graph_hash", "make_target"]


@dataclass
class Compiled:
    path: Path
    target: str
    tuning: TuningReport | None
    seconds: float


def compile_network(network: object, target_name: str, out_dir: Path, batch: int = 1, seed: int | None = 0,
                    weights: str | None = None, trials: int = 0, database_dir: Path | None = None,
                    show_progress: bool = True) -> Compiled:
    """Lower, (tune,) compile and write the artifact of a checked `cnndsl.Network`."""
    import time

    start = time.perf_counter()
    graph: Graph = network.graph  # type: ignore[attr-defined]
    check_supported(graph)  # before any weights are drawn: every unsupported op, located
    target = make_target(target_name)
    lowered = build_relax(graph, torch_state(network, seed, weights), batch)
    report, database = None, None
    if trials > 0:
        database, report = tune(lowered.module, target, database_dir or default_database_dir(), trials,
                                seed=seed or 0, show_progress=show_progress)
    executable = compile_lowered(lowered, target, database)
    path = write_artifact(executable, lowered, target, out_dir, graph.name, graph_hash(graph), report)
    return Compiled(path, str(target), report, time.perf_counter() - start)


def graph_hash(graph: Graph) -> str:
    """sha256 of the expanded network (names, ops, parameters, wiring, shapes): what the artifact was
    compiled from, independent of comments and formatting in the spec."""
    digest = hashlib.sha256()
    for node in graph.nodes():
        params = node.params.model_dump(mode="json") if node.params is not None else None
        digest.update(json.dumps([node.name, node.op, params, node.inputs, graph.meta(node.name)["shape"]],
                                 sort_keys=True, default=str).encode())
    return digest.hexdigest()

