"""Compile a lowered network with TVM and write the deployable artifact.

An artifact is a directory:
- `model.so`: the Relax VM executable and its kernels (`export_library`), for the target: code only;
- `params.npz`: the weights as the kernels read them (batch norm folded in, in the chosen layout, packed
  for tuned kernels: see `pipeline`), in the order `main` takes them after the inputs;
- `manifest.json`: spec hash, target, input and output shapes, parameter order, tuning summary.
`cnndsl.runtime.load(directory)` runs it with the TVM runtime alone.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import tvm
from tvm.s_tir import meta_schedule as ms

from ...diagnostics import UsageError
from ...runtime import LIBRARY, MANIFEST, PARAMS  # the artifact's file names, as the runtime reads them
from .build import Lowered
from .pipeline import Program, compile_program, prepared
from .tune import TuningReport

ARTIFACT_VERSION = 1


def make_target(name: str) -> tvm.target.Target:
    """`llvm` (this CPU, all its cores), `cuda` (the local GPU's architecture, else sm_80), or a target
    as TVM's JSON dict (`{"kind": "cuda", "arch": "sm_90"}`)."""
    if name.strip().startswith("{"):
        try:
            return tvm.target.Target(json.loads(name))
        except (ValueError, RuntimeError) as exc:  # TVM 0.27 raises ValueError, or RuntimeError subclasses
            raise UsageError(f"invalid target {name!r}: {exc}") from exc
    if name == "llvm":
        return tvm.target.Target({"kind": "llvm", "mcpu": _host_cpu(), "num-cores": os.cpu_count() or 1})
    if name == "cuda":
        return tvm.target.Target({"kind": "cuda", "arch": _cuda_arch()}, host={"kind": "llvm"})
    raise UsageError(f"unknown target {name!r}; use llvm, cuda, or a TVM target as a JSON dict")


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


def write_artifact(program: Program, lowered: Lowered, target: tvm.target.Target, out_dir: Path, network: str,
                   graph_sha256: str, tuning: TuningReport | None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    program.executable.export_library(str(out_dir / LIBRARY))
    np.savez(out_dir / PARAMS, **dict(zip(program.param_names, program.param_values, strict=True)))  # type: ignore[arg-type]
    manifest: dict[str, Any] = {
        "format": "cnndsl-tvm-artifact", "version": ARTIFACT_VERSION, "network": network,
        "graph_sha256": graph_sha256, "target": str(target), "target_kind": target.kind.name,
        "device": "cuda" if target.kind.name == "cuda" else "cpu", "dtype": "float32", "layout": program.layout,
        "inputs": {name: list(shape) for name, shape in lowered.input_shapes.items()},
        "outputs": {name: list(shape) for name, shape in lowered.output_shapes.items()},
        "params": program.param_names, "tuning": asdict(tuning) if tuning else None,
        "tvm": tvm.__version__,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return out_dir


def nvcc_available() -> bool:
    try:
        return subprocess.run(["nvcc", "--version"], capture_output=True, check=False).returncode == 0
    except OSError:
        return False
