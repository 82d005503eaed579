#!/usr/bin/env bash
# The test suite: unit tests of the engine, end-to-end tests of the
# `exsearch` binary (including real process kills), the real-world PDF set,
# the desktop shell's commands (Tauri's mock runtime), the UI (Chromium) and
# the real desktop app end to end (WebDriver under Xvfb).
# Needs ../shared/datasets beside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
# The sentence encoder hybrid search uses, fetched once before tests that
# index in parallel would each start the download.
python3 scripts/fetch_real_models.py minilm-l6-v2 > /dev/null
cargo test --workspace --locked "$@"
# The frontend in Chromium with the shell's IPC scripted.
(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error && npm test)
# The real app under Xvfb through tauri-driver (the binary cargo test built).
EXSEARCH_APP="${CARGO_TARGET_DIR:-target}/debug/exsearch-desktop" bash tests/e2e/run.sh
