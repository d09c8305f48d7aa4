#!/bin/bash
# The device side of `python benchmarks/gpu.py --bundle .gpu-bundle` (see that file): install the bundle's
# TVM runtime and wheels into a scratch directory and measure. Run from the repository root on a GPU
# machine that has python3 with torch, numpy and the CUDA runtime, and nothing else of this project's.
set -eo pipefail
source benchmarks/gpu_runtime.sh
bundle=${GPU_BUNDLE:-.gpu-bundle}
if [ -f "$bundle/artifacts.tar.xz" ]; then tar xJf "$bundle/artifacts.tar.xz" -C "$bundle"; fi
exec python3 benchmarks/gpu.py --from-bundle "$bundle" "$@"
