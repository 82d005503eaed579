#!/usr/bin/env bash
# Decode and prefill on an NVIDIA GPU, side by side with llama.cpp's CUDA
# build on the same files (`cargo bench -p exsearch-model --bench speed`
# with EXSEARCH_BENCH_DEVICE=cuda):
#
#   CUDA_COMPUTE_CAP=90 bash scripts/build-cuda.sh --cuda13 --bench --portable   # here, no GPU needed
#   bash scripts/bench-cuda.sh                                       # on the GPU machine
#
# Runs target/cuda13-v3/release/speed (or $SPEED); builds llama-bench with
# CUDA for $LLAMA_CUDA (default 90) when target/llama.cpp/build-cuda lacks
# it (nvcc, cmake and ninja needed there). The CUDA 13 libraries are looked
# up in $CUDA_LIBS, else in PyTorch's `nvidia` wheels. Formats as the bench's
# EXSEARCH_BENCH_FORMATS (default here q4_k_m,q8_0,bf16).
set -euo pipefail
cd "$(dirname "$0")/.."
SPEED="${SPEED:-target/cuda13-v3/release/speed}"
if [ -z "${CUDA_LIBS:-}" ]; then
    CUDA_LIBS=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2> /dev/null || true)
fi
export LD_LIBRARY_PATH="${CUDA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
if [ ! -x target/llama.cpp/build-cuda/bin/llama-bench ]; then
    LLAMA_CUDA="${LLAMA_CUDA:-90}" bash scripts/build-llama-bench.sh > target/llama-cuda-build.log 2>&1 \
        || { tail -n 30 target/llama-cuda-build.log; exit 1; }
fi
export LLAMA_BENCH="$PWD/target/llama.cpp/build-cuda/bin/llama-bench"
export EXSEARCH_BENCH_DEVICE=cuda
export EXSEARCH_BENCH_FORMATS="${EXSEARCH_BENCH_FORMATS:-q4_k_m,q8_0,bf16}"
"$SPEED" --bench
