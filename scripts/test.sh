#!/usr/bin/env bash
# The test suite: unit tests of the engine, end-to-end tests of the
# `exsearch` binary (including real process kills) and the real-world PDF
# set. Needs ../shared/datasets beside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo test --workspace --locked "$@"
