#!/usr/bin/env bash
# Installs what building and testing exsearch needs on Debian/Ubuntu: a C
# toolchain (SQLite and mimalloc are compiled from source), procps (`kill`,
# used by the Ctrl-C test), the WebKitGTK stack the desktop app is built on,
# Chromium, Node, Xvfb and WebKitWebDriver for its tests, Python 3 (the
# real-model tests fetch their GGUF files with it) and, when missing or older
# than the workspace's rust-version, Rust through rustup. Also Tesseract, for
# OCR, and poppler-utils, for one test.
set -euo pipefail

MIN_RUST=1.89

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; exit 1
  fi
}

export PATH="$HOME/.cargo/bin:$PATH"

rust_ok() {
  command -v cargo >/dev/null || return 1
  local v
  v=$(cargo --version | awk '{print $2}')
  [ "$(printf '%s\n%s\n' "$MIN_RUST" "$v" | sort -V | head -n1)" = "$MIN_RUST" ]
}

missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -x /bin/kill ] || [ -x /usr/bin/kill ] || missing+=(procps)
command -v python3 >/dev/null || missing+=(python3)
rust_ok || missing+=(curl ca-certificates)
# The desktop app (Tauri 2 over WebKitGTK), and its tests: Chromium for the
# UI tests, Node for their runner, Xvfb for the app under a virtual display.
for pkg in libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev libayatana-appindicator3-dev \
  libxdo-dev libssl-dev file chromium xvfb xauth webkit2gtk-driver; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# Tesseract with English: OCR of images and scanned PDF pages (the product
# runs it as a program; without it those files are listed as needing OCR).
command -v tesseract >/dev/null || missing+=(tesseract-ocr tesseract-ocr-eng)
# poppler's pdftotext: the reference the PDF text test measures word recall
# against (tests only; the product reads PDFs itself).
command -v pdftotext >/dev/null || missing+=(poppler-utils)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if ! rust_ok; then
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
    sh -s -- -y --profile minimal --component clippy,rustfmt
fi
