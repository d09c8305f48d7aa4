"""The TVM backend: a checked network lowered directly to Relax, compiled (optionally tuned with
MetaSchedule) for CPU or CUDA, and written as a deployable artifact that `cnndsl.runtime` runs."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tvm
import tvm.tirx

from ...diagnostics import Option, UsageError
from ...graph.model import Graph
from ...runtime import Model
from ...runtime import load as load_artifact
from .compile import check_artifact_target, make_target, write_artifact
from .lower import Lowered, build_relax, check_supported
from .pipeline import LAYOUT_CHOICES, Layout, compile_program, prepared
from .pretuned import describe, missing_kernels, pretuned_dir, read_only_database
from .remote import Tracker
from .rounds import (
    DEFAULT_BUNDLE_LIMIT_MIB,
    DEFAULT_ROUND_CANDIDATES,
    RoundReport,
    RoundsState,
    next_round,
    read_baselines,
    winning_records,
)
from .tune import TuningReport, default_database_dir, tune

__all__ = ["LAYOUT_CHOICES", "Compiled", "Lowered", "build_relax", "check_indexable", "check_supported",
           "compile_network", "default_database_dir", "make_target", "tune_network", "tune_round", "Tracker"]


@dataclass
class Compiled:
    """A compiled artifact directory and how it was made."""

    path: Path
    target: str
    layout: str
    tuning: TuningReport | None
    seconds: float

    def load(self, device_id: int = 0) -> Model:
        """The artifact, loaded to run: `compiled.load()(x)` (cnndsl.runtime.load)."""
        return load_artifact(self.path, device_id)


def prepare_network(graph: Graph, state: Mapping[str, np.ndarray], target_name: str, batch: int, layout: str,
                    winograd: str, tuned: bool, dynamic_batch: bool = False
                    ) -> tuple[tvm.target.Target, Lowered, Layout, tvm.IRModule]:
    """The network as the compiler takes it: lowered to Relax at `batch` (or any batch), then through the
    pipeline of `compile_network` (folding, layout, Winograd), with the target and the layout chosen: the
    module whose kernels tuning and compiling see (benchmarks read their tasks from it)."""
    check_supported(graph)  # every unsupported op, located
    check_indexable(graph, batch)
    target = make_target(target_name)
    # A dynamic batch is a symbolic dimension of every tensor in Relax: the kernels loop over it at run time.
    lowered = build_relax(graph, state, tvm.tirx.Var("batch", "int64") if dynamic_batch else batch)
    module, chosen = prepared(lowered, target, layout, winograd, tuned)
    return target, lowered, chosen, module


INT32_ELEMENTS = 2**31 - 1


def check_indexable(graph: Graph, batch: int) -> None:
    """UsageError when a tensor at this batch has more elements than TVM's kernels index (they use 32-bit
    indices for shapes that fit them, and fail deep in lowering on one that does not)."""
    largest, name = 0, ""
    for node in graph.nodes():
        facts = graph.checked(node.name)
        elements = batch * facts.elements if facts else 0
        if elements > largest:
            largest, name = elements, node.name
    if largest > INT32_ELEMENTS:
        raise UsageError(f"at batch {batch:,}, `{name}` has {largest:,} elements; TVM kernels index tensors of at "
                         f"most {INT32_ELEMENTS:,} (2^31 - 1): choose a smaller batch", option=Option.BATCH)


def compile_network(graph: Graph, state: Mapping[str, np.ndarray], target_name: str, out_dir: Path, batch: int = 1,
                    trials: int = 0, database_dir: Path | None = None, log: Callable[[str], None] | None = None,
                    layout: str = "auto", trials_per_task: int | None = None, winograd: str = "auto",
                    seed: int = 0, dynamic_batch: bool = False, cuda_graph: bool = False,
                    pretuned: bool = True) -> Compiled:
    """Lower, (tune,) compile and write the artifact of a checked network's `graph` with the weights
    `state` (named as the PyTorch module's state_dict: `Network.weights()`). Tuning records are applied
    when tuning now (`trials`, searching from `seed`) or when a database is named (`database_dir`, from
    `cnndsl tune`); `log` gets tuning's progress lines. With `dynamic_batch` the artifact takes any batch
    (`batch` is then only the one its tensor sizes are checked at). For a target cnndsl ships pre-tuned
    kernels for (`h100`, `h200`: pretuned.py), those are applied when no database is named and nothing is
    tuned, unless `pretuned` is False; `log` says which kernels they lack."""
    start = time.perf_counter()
    check_artifact_target(out_dir)  # a bad -o fails now, not after minutes of tuning
    shipped = pretuned_dir(target_name) if pretuned and trials <= 0 and database_dir is None and not dynamic_batch \
        else None
    tuned = trials > 0 or database_dir is not None or shipped is not None
    if dynamic_batch and tuned:
        raise UsageError("tuned kernels are specialised to one batch; compile a dynamic batch without tuning "
                         "(TVM's default schedules), or tune and compile for the batch you serve")
    target, lowered, chosen, module = prepare_network(graph, state, target_name, batch, layout, winograd, tuned,
                                                dynamic_batch)
    report, database = None, None
    if shipped is not None:
        database, _ = winning_records(read_only_database(shipped), read_baselines(shipped), target)
        missing = missing_kernels(module, target, database)
        if log is not None:
            lacking = f"; {len(missing)} kernel(s) keep default schedules (no record faster than them): " \
                      f"{', '.join(missing)}" if missing else "; every kernel has a record"
            log(f"using {describe(shipped)}{lacking} (a build without pre-tuned kernels leaves them out)")
    elif tuned:
        used_dir = database_dir or default_database_dir()
        tuned_database, report = tune(module, target, used_dir, trials, seed=seed, log=log,
                                      trials_per_task=trials_per_task)
        # a kernel whose default schedule was measured faster than every record keeps it (rounds.py)
        database, slower = winning_records(tuned_database, read_baselines(used_dir), target)
        if slower and log is not None:
            log(f"{slower} kernel(s) keep their default schedules: measured faster than every tuned candidate")
        if trials <= 0 and report.left_untuned:
            warnings.warn(f"{report.left_untuned} of {report.tasks} kernels have no tuning record in {database_dir} "
                          f"for this target, batch and layout: they keep default schedules (tune them with "
                          f"`cnndsl tune` and the same options)", stacklevel=2)
    if cuda_graph and target.kind.name != "cuda":
        raise UsageError(f"CUDA graphs apply to CUDA targets; this one is {target.kind.name}", option=Option.CUDA_GRAPH)
    program = compile_program(module, target, chosen, database, cuda_graph=cuda_graph)
    path = write_artifact(program, lowered, target, out_dir, graph.name, graph.content_hash(),
                          report if trials > 0 else None)
    return Compiled(path, str(target), chosen, report, time.perf_counter() - start)


def tune_network(graph: Graph, state: Mapping[str, np.ndarray], target_name: str, trials: int,
                 database_dir: Path | None = None, batch: int = 1, layout: str = "auto",
                 trials_per_task: int | None = None, log: Callable[[str], None] | None = None,
                 winograd: str = "auto", tracker: Tracker | None = None, builders: int | None = None) -> TuningReport:
    """Tune the kernels `compile_network` would build for `target_name` (the same layout and weights
    folding, so the records match; the weights' values do not matter) into the database, without
    compiling."""
    target, _, _, module = prepare_network(graph, state, target_name, batch, layout, winograd, tuned=True)
    _, report = tune(module, target, database_dir or default_database_dir(), trials, trials_per_task=trials_per_task,
                     log=log, tracker=tracker, builders=builders)
    return report


def tune_round(graph: Graph, state: Mapping[str, np.ndarray], target_name: str, directory: Path,
               candidates: int = DEFAULT_ROUND_CANDIDATES, ingest: Path | None = None,
               database_dir: Path | None = None, batch: int = 1, layout: str = "auto", winograd: str = "auto",
               seed: int = 0, bundle_limit_mib: float = DEFAULT_BUNDLE_LIMIT_MIB,
               log: Callable[[str], None] | None = None) -> RoundReport:
    """Tuning through files (rounds.py): ingest the last round's measurements (`ingest`, written by
    `cnndsl measure`) into the database, then write the next round's bundle of `candidates` built
    candidates in `directory`. The kernels are those `compile_network` builds with the same options."""
    target, _, chosen, module = prepare_network(graph, state, target_name, batch, layout, winograd, tuned=True)
    database = database_dir or default_database_dir()
    rounds_state = RoundsState(graph.name, graph.content_hash(), str(target), batch, chosen, str(database))
    return next_round(module, target, rounds_state, directory, candidates, ingest, seed, bundle_limit_mib, log)

