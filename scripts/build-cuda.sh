#!/usr/bin/env bash
# Builds the CUDA variant of the `exsearch` CLI (candle's CUDA kernels,
# compiled by nvcc) into target/cuda/release/exsearch.
#
#   bash scripts/build-cuda.sh           # nvcc if missing, then the build
#   bash scripts/build-cuda.sh --deps    # nvcc only
#   bash scripts/build-cuda.sh --cuda13  # for machines with CUDA 13 libraries
#   bash scripts/build-cuda.sh --bench   # the speed bench instead (EXSEARCH_BENCH_DEVICE=cuda)
#   bash scripts/build-cuda.sh --portable  # x86-64-v3 (AVX2) CPU code, not this CPU's
#
# nvcc comes from Debian's `nvidia-cuda-toolkit`, in the non-free component,
# which is added to apt's sources when it is missing. A build machine needs
# no GPU. The kernels are compiled for CUDA_COMPUTE_CAP (default 80: PTX,
# which the driver compiles on first use for its GPU, plus A100 machine code
# for candle's quantized kernels). For Hopper (H100, H200) use
# CUDA_COMPUTE_CAP=90: candle asks for `sm_90a`, which Debian 12's nvcc 11.8
# does not know, so a wrapper hands it plain `sm_90`.
#
# The binary needs the NVIDIA driver and CUDA libraries where it runs;
# `--device cuda` selects the GPU. By default it links Debian's CUDA 11.8
# (libcublas.so.11 and friends). `--cuda13` links cuBLAS, cuRAND and NVRTC
# 13 from NVIDIA's PyPI wheels instead (fetched once into
# ~/.cache/exsearch/cuda13), the form machines with a current driver and
# PyTorch's CUDA 13 wheels have, and the CUDA runtime statically (11.8,
# which any newer driver runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

deps_only=false cuda13=false bench=false portable=false
for arg in "$@"; do
    case "$arg" in
        --deps) deps_only=true ;;
        --cuda13) cuda13=true ;;
        --bench) bench=true ;;
        --portable) portable=true ;;
        *) echo "unknown option $arg" >&2; exit 2 ;;
    esac
done

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
$deps_only && exit 0

export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
target_dir=target/cuda
if [ "${CUDA_COMPUTE_CAP%a}" -ge 90 ] && nvcc --version | grep -q 'release 11\.'; then
    wrapper="$HOME/.cache/exsearch/nvcc-sm90"
    mkdir -p "$wrapper"
    cat > "$wrapper/nvcc" <<'WRAP'
#!/usr/bin/env bash
args=()
for a in "$@"; do a="${a//sm_90a/sm_90}"; args+=("${a//compute_90a/compute_90}"); done
exec /usr/bin/nvcc "${args[@]}"
WRAP
    chmod +x "$wrapper/nvcc"
    export NVCC="$wrapper/nvcc"
fi

if $cuda13; then
    root="$HOME/.cache/exsearch/cuda13"
    if [ ! -f "$root/lib/libcublas.so" ]; then
        rm -rf "$root" && mkdir -p "$root/wheels" "$root/lib"
        python3 -m pip download -q --no-deps --only-binary=:all: \
            --python-version 3.12 --platform manylinux_2_28_x86_64 \
            --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
            -d "$root/wheels" "nvidia-cublas>=13,<14" "nvidia-cuda-nvrtc>=13,<14" \
            "nvidia-curand>=10.4,<11"
        for wheel in "$root"/wheels/*.whl; do
            python3 -m zipfile -e "$wheel" "$root/unpacked"
        done
        for lib in "$root"/unpacked/nvidia/cu13/lib/lib*.so.*; do
            mv "$lib" "$root/lib/"
            name=$(basename "$lib")
            ln -sf "$name" "$root/lib/${name%%.so.*}.so"
        done
        rm -rf "$root/unpacked" "$root/wheels"
    fi
    # The runtime from the 11.8 toolkit, linked in: `-lcudart` finds this first.
    ln -sf /usr/lib/x86_64-linux-gnu/libcudart_static.a "$root/lib/libcudart.a"
    ln -sf /usr/lib/x86_64-linux-gnu/libcuda.so "$root/lib/libcuda.so"
    export CUDA_HOME="$root" CUDARC_CUDA_VERSION=13000
    target_dir=target/cuda13
fi

# A binary carried to a GPU machine meets another CPU: the default
# target-cpu=native (.cargo/config.toml) can die there on an instruction
# this CPU has (it did, going from this AVX-512 machine to an H200 host).
if $portable; then
    export RUSTFLAGS="-C target-cpu=x86-64-v3"
    target_dir="$target_dir-v3"
fi

if ! $bench; then
    cargo build --release --locked -p exsearch-cli --features cuda --target-dir "$target_dir"
    echo "built $target_dir/release/exsearch (CUDA, compute capability $CUDA_COMPUTE_CAP)"
    exit 0
fi
bin=$(cargo bench --locked -p exsearch-model --features cuda --bench speed \
    --target-dir "$target_dir" --no-run --message-format=json \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "speed" and m.get("executable"):
        print(m["executable"])')
cp "$bin" "$target_dir/release/speed"
echo "built $target_dir/release/speed (the speed bench, CUDA, compute capability $CUDA_COMPUTE_CAP)"
