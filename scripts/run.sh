#!/usr/bin/env bash
# The main job, headless: install what is needed, build `exsearch`, index a
# folder of documents and search it.
#
#   bash scripts/run.sh [FOLDER] [QUESTION...]
#
# FOLDER defaults to ~/Documents. State lives in $EXSEARCH_HOME (default
# ~/.local/share/exsearch). Afterwards, `target/release/exsearch --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

folder="${1:-$HOME/Documents}"
shift || true
if [ ! -d "$folder" ]; then
  echo "usage: bash scripts/run.sh FOLDER [QUESTION...]   ($folder is not a folder)" >&2
  exit 2
fi
cargo build --release --locked -p exsearch-cli
exsearch=target/release/exsearch

"$exsearch" library add "$folder"
"$exsearch" library status
if [ $# -gt 0 ] && [ -n "${EXSEARCH_MODEL:-}" ]; then
  # With a model (a folder, a .gguf file or a hub id pulled before), the
  # agent answers with citations.
  "$exsearch" ask "$*"
elif [ $# -gt 0 ]; then
  "$exsearch" search "$*"
  echo
  echo "to have a model answer with citations: exsearch model pull Qwen/Qwen2.5-1.5B-Instruct,"
  echo "then EXSEARCH_MODEL=Qwen/Qwen2.5-1.5B-Instruct $exsearch ask \"your question\""
else
  echo
  echo "search it:  $exsearch search \"your question\""
fi
