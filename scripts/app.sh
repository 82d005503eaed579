#!/usr/bin/env bash
# The desktop app: install what it needs, build it (release), start it.
#
#   bash scripts/app.sh
#
# State lives in $EXSEARCH_HOME (default ~/.local/share/exsearch), shared
# with the `exsearch` command line. Without a display (a server, CI), run it
# under a virtual one: xvfb-run -a bash scripts/app.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p exsearch-desktop
exec target/release/exsearch-desktop "$@"
