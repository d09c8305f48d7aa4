# Sourced by gpu_bundle.sh and gpu_round.sh on a GPU machine without TVM's compiler: install the bundle's
# TVM runtime and wheels into a scratch directory and set the environment to use them.
site=${SITE:-/tmp/cnndsl-site}
mkdir -p "$site"
tar xJf "${GPU_BUNDLE:-.gpu-bundle}"/tvm-runtime.tar.xz -C "$site"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "${GPU_BUNDLE:-.gpu-bundle}"/wheels/*.whl
# libtvm_runtime_cuda.so needs libcudart.so.13: the CUDA toolkit's, or the one PyTorch's wheels bring
cudart=$(python3 -c "import glob, os, nvidia; print(':'.join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d + '/**/libcudart.so.*', recursive=True)})))" 2>/dev/null || true)
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${cudart}:${LD_LIBRARY_PATH}
export PYTHONPATH=$site:$PWD TVM_USE_RUNTIME_LIB=1 PYTHONUNBUFFERED=1
python3 -c "import tvm, tvm.runtime.vm; print('TVM', tvm.__version__, 'runtime only; cuda(0) exists:', tvm.cuda(0).exist)"
