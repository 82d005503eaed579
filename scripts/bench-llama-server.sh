#!/usr/bin/env bash
# ExSearch eval over hotpotqa-dev-500 with the starter model (SmolLM2-135M-
# Instruct Q4_1), side by side: our local runtime (prompt cache on) against
# llama.cpp's llama-server (prompt cache on, one slot per question of a
# batch) serving the same file through our OpenAI backend. Prints seconds per
# question, the ratio, both scores, and how many answers are the same.
#
#   bash scripts/bench-llama-server.sh [QUESTIONS (100)] [BATCH (8)]
#
# Needs the shared datasets beside the repository (../shared/datasets) and
# llama.cpp's llama-server (built here by scripts/build-llama-bench.sh if
# missing). Results go to target/bench-llama-server/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
n="${1:-100}"
batch="${2:-8}"
data=../shared/datasets/hotpotqa-dev-500/questions.jsonl
[ -f "$data" ] || { echo "no $data: the shared datasets belong beside the repository" >&2; exit 2; }
server=target/llama.cpp/build/bin/llama-server
[ -x "$server" ] || bash scripts/build-llama-bench.sh llama-server
cargo build --release --locked -p exsearch-cli
exsearch=target/release/exsearch
model=$("$exsearch" model starter)
threads=$(nproc)
out=target/bench-llama-server
rm -rf "$out" && mkdir -p "$out"
export EXSEARCH_HOME="$out/home"
eval_args=(eval --data "$data" --limit "$n" --corpus-from-contexts --batch "$batch" --temperature 0 --json)

echo "ours: $n questions, batch $batch, $threads threads" >&2
"$exsearch" "${eval_args[@]}" -m "$model" --out "$out/ours.jsonl" > "$out/ours.json"

# One slot per question in flight, each with the model's 8,192 tokens.
# Weight repacking is off: llama.cpp's AMX repacked kernels die with an
# illegal instruction on batched prompts on this CPU (see the speed bench).
port=$((20000 + RANDOM % 20000))
"$server" -m "$model" -t "$threads" -np "$batch" -c $((8192 * batch)) --cache-prompt \
    --host 127.0.0.1 --port "$port" --no-repack > "$out/llama-server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$port/health" > /dev/null && break
    kill -0 $pid 2>/dev/null || { cat "$out/llama-server.log" >&2; exit 1; }
    sleep 1
done
echo "llama-server: $n questions, $batch slots, $threads threads" >&2
"$exsearch" "${eval_args[@]}" --endpoint "http://127.0.0.1:$port" --concurrency "$batch" \
    --out "$out/llama-server.jsonl" > "$out/llama-server.json"

python3 - "$out" <<'EOF'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
s = {k: json.loads((out / f"{k}.json").read_text()) for k in ("ours", "llama-server")}
rows = {k: [json.loads(l) for l in (out / f"{k}.jsonl").read_text().splitlines() if l.strip()] for k in s}
n = s["ours"]["questions"]
print(f"| runtime | seconds per question | EM | F1 | steps |")
print(f"|---|---|---|---|---|")
for k, v in s.items():
    print(f"| {k} | {v['seconds'] / v['questions']:.2f} | {v['em']:.1f} | {v['f1']:.1f} | {v['avg_steps']:.2f} |")
ratio = (s["llama-server"]["seconds"] / s["llama-server"]["questions"]) / (s["ours"]["seconds"] / n)
theirs = {r["id"]: r["prediction"] for r in rows["llama-server"]}
same = sum(theirs.get(r["id"]) == r["prediction"] for r in rows["ours"])
print(f"\nours is {ratio:.2f}x faster per question; {same}/{n} answers identical to llama-server's")
EOF
