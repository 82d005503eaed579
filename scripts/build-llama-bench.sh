#!/usr/bin/env bash
# Builds llama.cpp's llama-bench (the peer of `cargo bench -p exsearch-model
# --bench speed`) from the source that the llama-cpp-python sdist on PyPI
# vendors, with native SIMD kernels, into target/llama.cpp/build/bin.
# Needs Python 3 with pip (for cmake and ninja) and a C++ compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
WORK=target/llama.cpp-src
mkdir -p "$WORK"
if [ ! -d "$WORK/llama_cpp_python-$VERSION" ]; then
    url=$(curl -fsSL "https://pypi.org/pypi/llama-cpp-python/$VERSION/json" | python3 -c '
import json, sys
urls = json.load(sys.stdin)["urls"]
print(next(u["url"] for u in urls if u["packagetype"] == "sdist"))')
    case "$url" in http*) ;; *) url="https://pypi.org/${url#../../}" ;; esac
    curl -fsSL -o "$WORK/sdist.tar.gz" "$url"
    tar -xzf "$WORK/sdist.tar.gz" -C "$WORK"
fi
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q cmake ninja
export PATH="$PWD/$WORK/venv/bin:$PATH"
rm -rf target/llama.cpp
ln -s "llama.cpp-src/llama_cpp_python-$VERSION/vendor/llama.cpp" target/llama.cpp
cmake -S target/llama.cpp -B target/llama.cpp/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON
ninja -C target/llama.cpp/build llama-bench
echo "built target/llama.cpp/build/bin/llama-bench"
