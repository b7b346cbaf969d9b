#!/bin/bash
# Compile every CUDA test, example and benchmark kernel to PTX into .device-cache (no GPU needed),
# for test/cuda/run_on_gpu.sh on a GPU machine. Usage (repo root): test/cuda/fill_cache.sh [PYTHON]
set -u
py=${1:-.venv/bin/python}
export PYTHONPATH="$PWD/python" ALLOY_CACHE_DIR="$PWD/.device-cache"
rm -rf .device-cache
"$py" -m pytest -q -p no:cacheprovider test/cuda | tail -1
for ex in examples/kernel/*.py; do
  "$py" -c "import alloy.config, runpy, sys
from alloy.runtime import cuda
cuda.compile_only(True); alloy.config.set(target='cuda')
try:
    runpy.run_path(sys.argv[1], run_name='__main__')
except SystemExit:
    pass" "$ex" > /dev/null || echo "could not compile $ex"
done
"$py" benchmarks/cuda_kernels.py --compile-only
"$py" -c "from alloy.runtime.specializations import compiler_fingerprint; print(compiler_fingerprint())" > .device-cache/FINGERPRINT
echo "$(find .device-cache -name '*.ptx' | wc -l) PTX files, fingerprint $(cat .device-cache/FINGERPRINT)"
