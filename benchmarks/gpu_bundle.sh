#!/bin/bash
# The device side of `python benchmarks/gpu.py --bundle .gpu-bundle` (see that file): install the bundle's
# TVM runtime and wheels into a scratch directory and measure. Run from the repository root on a GPU
# machine that has python3 with torch, numpy and the CUDA runtime, and nothing else of this project's.
set -eo pipefail
site=${SITE:-/tmp/cnndsl-site}
mkdir -p "$site"
tar xJf .gpu-bundle/tvm-runtime.tar.xz -C "$site"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .gpu-bundle/wheels/*.whl
# libtvm_runtime_cuda.so needs libcudart.so.13: the CUDA toolkit's, or the one PyTorch's wheels bring
cudart=$(python3 -c "import glob, os, nvidia; print(':'.join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d + '/**/libcudart.so.*', recursive=True)})))" 2>/dev/null || true)
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${cudart}:${LD_LIBRARY_PATH}
export PYTHONPATH=$site:$PWD TVM_USE_RUNTIME_LIB=1 PYTHONUNBUFFERED=1
python3 -c "import tvm, tvm.runtime.vm; print('TVM', tvm.__version__, 'runtime only; cuda(0) exists:', tvm.cuda(0).exist)"
exec python3 benchmarks/gpu.py --from-bundle .gpu-bundle "$@"
