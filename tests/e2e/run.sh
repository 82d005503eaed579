#!/usr/bin/env bash
# End-to-end test of the real desktop app: tauri-driver + WebKitWebDriver
# under Xvfb. Builds the app (debug) unless EXSEARCH_APP names a binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tauri-driver >/dev/null; then
  cargo install tauri-driver --version 2.1.0 --locked
fi
if [ -z "${EXSEARCH_APP:-}" ]; then
  cargo build --locked -p exsearch-desktop
fi
xvfb-run -a -s "-screen 0 1280x860x24" node tests/e2e/app.e2e.mjs
