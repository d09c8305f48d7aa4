"""CUDA kernels compiled ahead of time, here, for a machine that has the GPU but no compiler.

TVM 0.27 built on a machine without a CUDA driver keeps each library's kernels as CUDA source and
compiles them when the library is loaded (`cnndsl.runtime` hands it precompiled binaries instead). So a
build machine compiles the sources itself. Compiling one candidate kernel at a time costs 1.2 to 1.7 s of
nvcc here (NVRTC: 1.4 to 2.4 s), most of it parsing the same headers: every TVM kernel source starts
with the same preamble of includes and macros. `compile_kernel_groups` compiles many kernels in one nvcc
call (the preamble once, each kernel renamed by its own function name beforehand, so names never clash),
several calls at a time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

KERNEL_MARK = 'extern "C" __global__'


def cuda_home() -> Path | None:
    """The CUDA toolkit's root: $CUDA_PATH or $CUDA_HOME, else the directory of the real nvcc (a wrapper
    script on PATH is followed by asking nvcc where it lives), else /usr/local/cuda."""
    for variable in ("CUDA_PATH", "CUDA_HOME"):
        if os.environ.get(variable):
            return Path(os.environ[variable])
    nvcc = shutil.which("nvcc")
    if nvcc:
        try:  # `nvcc -v` names its own directory (TOP=...), through any wrapper script
            listing = subprocess.run([nvcc, "-v", "--version"], capture_output=True, text=True, timeout=30,
                                     check=False).stderr
        except (OSError, subprocess.TimeoutExpired):
            listing = ""
        for line in listing.splitlines():
            if line.startswith("#$ TOP="):
                return Path(line.split("=", 1)[1].strip())
        root = Path(nvcc).resolve().parent.parent
        if (root / "include" / "cuda_runtime.h").exists():
            return root
    fallback = Path("/usr/local/cuda")
    return fallback if fallback.exists() else None


def nvcc_available() -> bool:
    try:
        return subprocess.run(["nvcc", "--version"], capture_output=True, check=False).returncode == 0
    except OSError:
        return False


def split_source(source: str) -> tuple[str, str]:
    """A TVM kernel source as (preamble, kernels): the includes and macros before the first kernel, which
    every kernel of one TVM version and target shares, and the rest."""
    at = source.find(KERNEL_MARK)
    if at < 0:
        raise ValueError("not a TVM CUDA kernel source (no extern \"C\" __global__ function)")
    return source[:at], source[at:]


@dataclass
class KernelGroup:
    """Kernels compiled together: the indices of their sources, and the cubin (None if nvcc failed)."""

    members: list[int]
    binary: bytes | None = None
    error: str | None = None


def compile_kernel_groups(sources: Sequence[str], arch: str, group_size: int = 16,
                          jobs: int | None = None, timeout: float = 600.0) -> list[KernelGroup]:
    """Compile `sources` (TVM kernel sources with distinct kernel names) into cubins for `arch` (`sm_90a`),
    `group_size` kernels per nvcc call and `jobs` calls at a time (default: one per core). A group that
    fails is compiled again one kernel at a time, so a bad kernel costs only itself."""
    groups: dict[str, list[int]] = {}
    for index, source in enumerate(sources):
        preamble, _ = split_source(source)
        groups.setdefault(preamble, []).append(index)
    batches = [members[i:i + group_size] for members in groups.values() for i in range(0, len(members), group_size)]
    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        compiled = list(pool.map(lambda members: _compile_group(sources, members, arch, timeout), batches))
        retry = [group for group in compiled if group.binary is None and len(group.members) > 1]
        singles = list(pool.map(lambda index: _compile_group(sources, [index], arch, timeout),
                                [index for group in retry for index in group.members]))
    return [group for group in compiled if group.binary is not None or len(group.members) == 1] + singles


def _compile_group(sources: Sequence[str], members: list[int], arch: str, timeout: float) -> KernelGroup:
    preamble, _ = split_source(sources[members[0]])
    text = preamble + "\n".join(split_source(sources[i])[1] for i in members)
    with tempfile.TemporaryDirectory(prefix="cnndsl-nvcc-") as scratch:
        source_path, cubin_path = Path(scratch) / "kernels.cu", Path(scratch) / "kernels.cubin"
        source_path.write_text(text)
        command = ["nvcc", "--cubin", "-O3", f"-arch={arch}", "-o", str(cubin_path), str(source_path)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return KernelGroup(members, error=f"nvcc took more than {timeout:.0f} s")
        except OSError as exc:
            return KernelGroup(members, error=f"nvcc could not run: {exc}")
        if done.returncode != 0:
            errors = [line for line in (done.stderr or done.stdout).splitlines() if "error" in line]
            return KernelGroup(members, error="\n".join(errors[:10])[-2000:])
        return KernelGroup(members, cubin_path.read_bytes())


def source_sha256(source: str) -> str:
    """How a precompiled binary is matched to the kernel source TVM holds (cnndsl.runtime's hook)."""
    return hashlib.sha256(source.encode()).hexdigest()
