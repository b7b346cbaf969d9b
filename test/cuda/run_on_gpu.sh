#!/bin/bash
# Run the CUDA tests, examples and benchmarks on a GPU machine from a carried kernel cache.
# Usage (repo root): test/cuda/run_on_gpu.sh OUTDIR   -- needs python3 with numpy, ml_dtypes, torch,
# nanobind, cmake, ninja, pytest; no MLIR (a PTX cache miss fails loudly).
set -u
out=${1:-/tmp}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
cmake -S . -B /tmp/alloy-build -G Ninja -DCMAKE_BUILD_TYPE=Release -DALLOY_BUILD_COMPILER_EXT=OFF \
  -DPython_EXECUTABLE="$(command -v python3)" > "$out/build.log" 2>&1 &&
  cmake --build /tmp/alloy-build --target _runtime -j 16 >> "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
cp /tmp/alloy-build/runtime/_runtime*.so python/alloy/
export PYTHONPATH="$PWD/python" ALLOY_CACHE_DIR="$PWD/.device-cache" PYTHONUNBUFFERED=1
python3 -c "from alloy.runtime.specializations import compiler_fingerprint as f; print('fingerprint here', f())"
echo "fingerprint of the carried cache $(cat .device-cache/FINGERPRINT)"
python3 -m pytest -q -p no:cacheprovider -rs --ignore=test/cuda/test_cuda_ptx.py test/cuda 2>&1 | tee "$out/tests.log" | tail -40
python3 benchmarks/cuda_kernels.py 2>&1 | tee "$out/bench.log"
