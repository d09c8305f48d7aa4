#!/bin/bash
# The device side of `make gpu-round` (benchmarks/gpu_rounds.py, docs/round-tuning.md): measure every round
# waiting in tuning/h200/rounds/ with TVM's runtime alone (no compiler, no cnndsl dependencies), within BUDGET
# seconds in all (default 330), and leave the results in $OUT/results.tar (rewritten after each round: a run
# cut short keeps what it measured). Needs .gpu-bundle/ (`make gpu-runtime`: TVM's runtime, the tvm-ffi wheel)
# carried. Bring results.tar back, unpack it into .gpu-results/, then `make gpu-round` ingests it.
set -eo pipefail
source benchmarks/gpu_runtime.sh
out=${OUT:-.gpu-results}
mkdir -p "$out" /tmp/cnndsl-results
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader || true
mapfile -t bundles < <(python3 benchmarks/gpu_rounds.py pending)
if [ ${#bundles[@]} -eq 0 ]; then echo "no round is waiting for measurements"; exit 0; fi
budget=${BUDGET:-330}
each=$((budget / ${#bundles[@]}))
for bundle in "${bundles[@]}"; do
    label=$(basename "$(dirname "$bundle")")
    python3 -m cnndsl.measure "$bundle" -o "/tmp/cnndsl-results/$label.json" --budget "$each" 2>&1 | tail -3 || true
    tar cf "$out/results.tar" -C /tmp/cnndsl-results .
done
