#!/usr/bin/env bash
# Builds the CUDA variant of the `exsearch` CLI (candle's CUDA kernels,
# compiled by nvcc) into target/cuda/release/exsearch.
#
#   bash scripts/build-cuda.sh          # nvcc if missing, then the build
#   bash scripts/build-cuda.sh --deps   # nvcc only
#
# nvcc comes from Debian's `nvidia-cuda-toolkit`, in the non-free component,
# which is added to apt's sources when it is missing. A build machine needs
# no GPU: the kernels are compiled to PTX for CUDA_COMPUTE_CAP (default 80),
# which the driver compiles on first use for its GPU (A100 and every later
# one: RTX 30/40, H100, H200). Debian 12's CUDA 11.8 cannot target 90
# (candle asks for Hopper's `compute_90a`, which needs CUDA 12). The binary
# needs the NVIDIA driver and CUDA libraries where it runs; `--device cuda`
# selects the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v nvcc > /dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    sources=/etc/apt/sources.list.d/debian.sources
    if [ -f "$sources" ] && ! grep -q '^Components:.*non-free\( \|$\)' "$sources"; then
        $sudo sed -i -E 's/^(Components: .*)$/\1 contrib non-free/' "$sources"
    elif [ -f /etc/apt/sources.list ] && ! grep -q ' non-free\( \|$\)' /etc/apt/sources.list; then
        $sudo sed -i -E 's/^(deb .* main)$/\1 contrib non-free/' /etc/apt/sources.list
    fi
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        nvidia-cuda-toolkit
fi
nvcc --version | tail -2
[ "${1:-}" = "--deps" ] && exit 0

export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
cargo build --release --locked -p exsearch-cli --features cuda --target-dir target/cuda
echo "built target/cuda/release/exsearch (CUDA, compute capability $CUDA_COMPUTE_CAP)"
