"""This CPU's fp32 peak, measured: `fma_peak.c` (independent vector FMA chains on every core), built
with the host compiler for this CPU. Run: `python benchmarks/cpu_peak.py` (a few seconds)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("fma_peak.c")


def measure_peak_gflops(threads: int | None = None) -> float:
    """GFLOPS of fp32 FMAs on `threads` cores (default: all), best of five repeats."""
    with tempfile.TemporaryDirectory() as scratch:
        binary = Path(scratch) / "fma_peak"
        subprocess.run(["gcc", "-O3", "-march=native", "-ffp-contract=fast", "-fopenmp", str(SOURCE), "-o",
                        str(binary)], check=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads or os.cpu_count() or 1), "OMP_PROC_BIND": "true"}
        out = subprocess.run([str(binary)], capture_output=True, text=True, check=True, env=env).stdout
    return float(out.split()[0])


if __name__ == "__main__":
    cores = os.cpu_count() or 1
    print(f"fp32 FMA peak: {measure_peak_gflops(1):.1f} GFLOPS on 1 core, {measure_peak_gflops():.1f} GFLOPS "
          f"on {cores} cores")
