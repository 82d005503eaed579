#!/usr/bin/env bash
# End-to-end test of the real desktop app: tauri-driver + WebKitWebDriver
# under Xvfb. Builds the app (debug) unless EXSEARCH_APP names a binary.
# The answering model is a seeded demonstration trained here first with the
# CLI (tests/e2e/showcase-demo.json, the short run train_cli asserts an EM
# gain on; a few minutes), unless E2E_SHOWCASE_DEMO names a finished one.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tauri-driver >/dev/null; then
  cargo install tauri-driver --version 2.1.0 --locked
fi
if [ -z "${EXSEARCH_APP:-}" ]; then
  cargo build --locked -p exsearch-desktop
fi
if [ -z "${E2E_SHOWCASE_DEMO:-}" ]; then
  target="${CARGO_TARGET_DIR:-target}"
  export E2E_SHOWCASE_DEMO="$target/e2e/showcase"
  cli="${EXSEARCH_CLI:-$target/debug/exsearch}"
  [ -x "$cli" ] || cargo build --locked -p exsearch-cli
  # Trained again only when its settings or the CLI changed.
  if [ ! -f "$E2E_SHOWCASE_DEMO/report.json" ] || [ tests/e2e/showcase-demo.json -nt "$E2E_SHOWCASE_DEMO/report.json" ] \
    || [ "$cli" -nt "$E2E_SHOWCASE_DEMO/report.json" ]; then
    echo "training the showcase demonstration (seed 1) into $E2E_SHOWCASE_DEMO"
    mkdir -p "$target/e2e"
    if ! "$cli" demo em --seed 1 --config tests/e2e/showcase-demo.json --dir "$E2E_SHOWCASE_DEMO" --json \
      --home "$target/e2e/showcase-home" > "$target/e2e/showcase-report.json" 2> "$target/e2e/showcase.log"; then
      tail -n 20 "$target/e2e/showcase.log" >&2
      exit 1
    fi
  fi
fi
xvfb-run -a -s "-screen 0 1280x860x24" node tests/e2e/app.e2e.mjs
