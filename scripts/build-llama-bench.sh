#!/usr/bin/env bash
# Builds llama.cpp's llama-bench (the peer of `cargo bench -p exsearch-model
# --bench speed`) and its shared libraries (used by scripts/parity/run.py
# --llama-cpp) from the source that the llama-cpp-python sdist on PyPI
# vendors, with native SIMD kernels, into target/llama.cpp/build/bin.
#
#   bash scripts/build-llama-bench.sh [TARGET...]   (default llama-bench;
#   llama-server for scripts/bench-llama-server.sh)
#   LLAMA_PORTABLE=1 bash scripts/build-llama-bench.sh   (x86-64-v3: AVX2
#   and nothing newer, into target/llama.cpp/build-v3)
#   LLAMA_CUDA=ARCH bash scripts/build-llama-bench.sh   (CUDA build for one
#   architecture, e.g. 90 on an H100/H200, without the FlashAttention
#   kernels, which take most of the compile; into target/llama.cpp/build-cuda)
# Needs curl (first run), cmake and ninja (else Python 3 with pip fetches
# them) and a C++ compiler; nvcc for LLAMA_CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
WORK=target/llama.cpp-download
SRC=target/llama.cpp
if [ ! -f "$SRC/CMakeLists.txt" ]; then
    mkdir -p "$WORK"
    url=$(curl -fsSL "https://pypi.org/pypi/llama-cpp-python/json" | python3 -c '
import json, sys
files = json.load(sys.stdin)["releases"][sys.argv[1]]
print(next(f["url"] for f in files if f["packagetype"] == "sdist"))' "$VERSION")
    case "$url" in http*) ;; *) url="https://pypi.org/${url#../../}" ;; esac
    curl -fsSL -o "$WORK/sdist.tar.gz" "$url"
    # -m: stamp files with the extraction time (sdist mtimes can lie in the future)
    tar -xzmf "$WORK/sdist.tar.gz" -C "$WORK"
    rm -rf "$SRC"
    mv "$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp" "$SRC"
    rm -rf "$WORK"
fi
if ! command -v cmake > /dev/null || ! command -v ninja > /dev/null; then
    python3 -m venv target/llama.cpp-venv
    target/llama.cpp-venv/bin/pip install -q cmake ninja
    export PATH="$PWD/target/llama.cpp-venv/bin:$PATH"
fi
BUILD="$SRC/build"
extra=()
native=ON
if [ -n "${LLAMA_PORTABLE:-}" ]; then
    # x86-64-v3: AVX2, FMA, F16C, BMI2 and nothing newer, as a portable
    # build of ours (RUSTFLAGS="-C target-cpu=x86-64-v3"), into build-v3.
    BUILD="$SRC/build-v3"
    native=OFF
    extra=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
        -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF)
fi
if [ -n "${LLAMA_CUDA:-}" ]; then
    BUILD="$SRC/build-cuda"
    extra=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$LLAMA_CUDA" -DGGML_CUDA_FA=OFF
        -DGGML_CUDA_NCCL=OFF)
fi
cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=$native -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON "${extra[@]}"
targets=("${@:-llama-bench}")
ninja -C "$BUILD" "${targets[@]}"
echo "built ${targets[*]} in $BUILD/bin"
