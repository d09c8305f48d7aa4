"""Compile a lowered network with TVM and write the deployable artifact.

An artifact is a directory:
- `model.so`: the Relax VM executable and its kernels (`export_library`), for the target: code only;
- `params.npz`: the weights as the kernels read them (batch norm folded in, in the chosen layout, packed
  for tuned kernels: see `pipeline`), in the order `main` takes them after the inputs;
- `manifest.json`: spec hash, target, input and output shapes, parameter order, tuning summary.
`cnndsl.runtime.load(directory)` runs it with the TVM runtime alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import tvm
from tvm.s_tir import meta_schedule as ms

from ...diagnostics import UsageError
from ...files import atomic_directory, check_directory_target

# the artifact's format as the runtime reads and checks it
from ...runtime import GRAPH_KEY, KERNELS, LIBRARY, PARAMS, ArtifactManifest, file_sha256, is_artifact
from .cuda import nvcc_available
from .lower import Lowered
from .pipeline import Program, compile_program, prepared
from .tune import TuningReport

# GPUs named by model: TVM's own complete targets (architecture, threads, shared memory, L2), which
# MetaSchedule needs: `{"kind": "cuda", "arch": "sm_90"}` alone fails in it ("missing attribute
# max_threads_per_block"). The H200 is the H100's SM (sm_90) with more and faster memory: one target.
NAMED_TARGETS = {"h100": "nvidia/nvidia-h100", "h200": "nvidia/nvidia-h100"}


def make_target(name: str) -> tvm.target.Target:
    """`llvm` (this CPU, all its cores), `cuda` (the local GPU's architecture, else sm_80), a GPU by model
    (`h100`, `h200`: NAMED_TARGETS), or a target as TVM's JSON dict (`{"kind": "cuda", "arch": "sm_90"}`)."""
    if name in NAMED_TARGETS:
        return tvm.target.Target(NAMED_TARGETS[name], host={"kind": "llvm"})
    if name.strip().startswith("{"):
        try:
            target = tvm.target.Target(json.loads(name))
        except (ValueError, RuntimeError, TypeError) as exc:  # TVM 0.27 raises these, or subclasses of them
            raise UsageError(f"invalid target {name[:200]!r}: {str(exc).splitlines()[0][:200]}") from exc
        _check_cpu(target)
        return target
    if name == "llvm":
        return tvm.target.Target({"kind": "llvm", "mcpu": _host_cpu(), "num-cores": os.cpu_count() or 1})
    if name == "cuda":
        return tvm.target.Target({"kind": "cuda", "arch": _cuda_arch()}, host={"kind": "llvm"})
    raise UsageError(f"unknown target {name!r}; use llvm, cuda, {', '.join(NAMED_TARGETS)}, or a TVM target as a "
                     "JSON dict")


def _check_cpu(target: tvm.target.Target) -> None:
    """An `mcpu` LLVM does not know is an error: LLVM would log a line and build for a generic CPU, so the
    artifact would silently lose the instructions the user asked for."""
    mcpu = target.attrs.get("mcpu") if target.kind.name == "llvm" else None
    if not mcpu:
        return
    known = [str(cpu) for cpu in tvm.target.codegen.llvm_get_cpu_archlist(target)]
    if known and str(mcpu) not in known:
        from ...diagnostics import did_you_mean

        examples = ", ".join(known[:6])
        hint = did_you_mean(str(mcpu), known) or f"LLVM knows {len(known)} CPUs for this triple: {examples}, ..."
        raise UsageError(f"target mcpu {str(mcpu)!r} is not a CPU LLVM knows; {hint}")


def _host_cpu() -> str:
    return str(tvm.target.codegen.llvm_get_system_cpu())


def _cuda_arch() -> str:
    device = tvm.cuda(0)
    if device.exist:
        return "sm_" + device.compute_version.replace(".", "")
    return "sm_80"


def compile_lowered(lowered: Lowered, target: tvm.target.Target, database: ms.database.Database | None = None,
                    layout: str = "auto", winograd: str = "auto") -> Program:
    """Relax -> kernels and the parameters they read (see `pipeline`). With a database, tuned kernels are
    applied and `auto` picks the tuned layout and algorithm; the rest keep TVM's default schedules."""
    module, chosen = prepared(lowered, target, layout, winograd, tuned=database is not None)
    return compile_program(module, target, chosen, database)


def check_artifact_target(out_dir: Path) -> None:
    """UsageError unless an artifact may be written to `out_dir` (absent, empty or a previous artifact)."""
    check_directory_target(out_dir, "artifact directory", is_artifact)


def write_artifact(program: Program, lowered: Lowered, target: tvm.target.Target, out_dir: Path, network: str,
                   graph_sha256: str, tuning: TuningReport | None) -> Path:
    """Write the artifact into a temporary directory beside `out_dir`, then swap it in whole: a reader
    (or a compile interrupted half-way) never sees a mix of two builds."""
    with atomic_directory(out_dir, "artifact directory", is_artifact) as staging:
        program.executable.export_library(str(staging / LIBRARY))
        kernels = precompile_cuda(program, target, staging)
        arrays = dict(zip(program.param_names, program.param_values, strict=True))
        np.savez(staging / PARAMS, **arrays, **{GRAPH_KEY: np.array(graph_sha256)})  # type: ignore[arg-type]
        ArtifactManifest(
            network=network, graph_sha256=graph_sha256, target_kind=target.kind.name,
            device="cuda" if target.kind.name == "cuda" else "cpu", dtype="float32",
            inputs={name: manifest_shape(shape) for name, shape in lowered.input_shapes.items()},
            outputs={name: manifest_shape(shape) for name, shape in lowered.output_shapes.items()},
            params=program.param_names,
            files={name: file_sha256(staging / name) for name in (LIBRARY, PARAMS, *([KERNELS] * bool(kernels)))},
            target=str(target), layout=program.layout, cuda_graph=program.cuda_graph,
            tuning=asdict(tuning) if tuning else None, tvm=tvm.__version__, cuda_kernels=kernels or None,
        ).write(staging)
    return out_dir


def cuda_source(program: Program) -> str | None:
    """The CUDA source a library keeps in place of kernels (TVM 0.27 without a CUDA driver), else None."""
    modules = list(program.executable.mod.imports)
    while modules:
        module = modules.pop()
        if module.kind == "cuda":
            source = module.inspect_source("cuda")
            return source or None
        modules += list(module.imports)
    return None


def precompile_cuda(program: Program, target: tvm.target.Target, out_dir: Path) -> dict[str, str] | None:
    """Compile the kernels' CUDA source with nvcc into `KERNELS`, which the runtime hands TVM when it
    loads the library (cnndsl.runtime._precompiled_kernels), so a deployment needs neither TVM's compiler
    nor NVRTC. Without nvcc the kernels stay source, compiled when loaded (a warning says so)."""
    if target.kind.name != "cuda":
        return None
    source = cuda_source(program)
    if source is None:
        return None
    arch = str(target.attrs.get("arch", "sm_80"))
    if not nvcc_available():
        warnings.warn(f"nvcc is not installed here: the artifact keeps its CUDA kernels as source, compiled when "
                      f"it is loaded, which needs TVM's compiler and NVRTC on that machine (install the CUDA "
                      f"toolkit here to compile them now, for {arch})", stacklevel=4)
        return None
    from tvm.support.nvcc import compile_cuda

    with target:  # TVM's nvcc wrapper reads parts of the architecture from the current target
        binary = compile_cuda(source, target_format="fatbin", arch=arch, compiler="nvcc")
    (out_dir / KERNELS).write_bytes(binary)
    return {"source_sha256": hashlib.sha256(source.encode()).hexdigest(), "arch": arch, "compiler": "nvcc"}


def manifest_shape(shape: tuple[Any, ...]) -> list[int | None]:
    """A batched shape for the manifest: a symbolic batch (`--dynamic-batch`) is null."""
    return [d if isinstance(d, int) else None for d in shape]


