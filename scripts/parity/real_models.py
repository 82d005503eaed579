#!/usr/bin/env python3
"""Parity of our runtime with llama.cpp on the real pretrained GGUF files
(SmolLM2-135M-Instruct Q4_1 and gemma-3-270m Q4_K_M), and the reference
values the test suite checks against (crates/exsearch-model/tests/real_models.rs).

The reference is llama.cpp with all tokens in one batch. The same figures
for llama.cpp fed one token at a time (its other kernels) show how far
llama.cpp is from itself: the noise floor of 8-bit activations.

    bash scripts/build-llama-bench.sh        # llama.cpp's libraries, once
    python3 scripts/parity/real_models.py [--write]

For each model: llama.cpp's tokenization of a set of texts against ours;
teacher-forced logits over a long text (top-1 agreement, mean and max
|logit difference| over the whole vocabulary); greedy continuations of
several prompts. With --write, llama.cpp's side is recorded in
crates/exsearch-model/tests/data/real_models.json.

Needs numpy. The models come from scripts/fetch_real_models.py.
"""
import argparse
import json
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "scripts" / "parity"))
import fetch_real_models  # noqa: E402
from run import llama_cpp_logits, parity_bin  # noqa: E402

REFERENCE = ROOT / "crates/exsearch-model/tests/data/real_models.json"

# A long passage for teacher forcing: prose, names, numbers, a list and code.
LONG_TEXT = """The history of the printing press begins in the fifteenth century, when Johannes Gutenberg of Mainz combined movable metal type, oil-based inks and a screw press adapted from those used to make wine. Before him, books in Europe were copied by hand or printed from carved wooden blocks, and a single Bible could take a scribe more than a year. By 1500, presses in more than two hundred and fifty cities had produced some twenty million volumes.

The consequences were broad. Scholars could compare identical copies of a text, which made citation and correction possible; the Reformation spread through pamphlets printed in the tens of thousands; and vernacular languages gained standard spellings. Historians still debate how quickly literacy rose, but the price of a book fell by roughly two thirds within fifty years.

Three questions remain open:
1. How much did the press accelerate the Scientific Revolution?
2. Why did printing spread more slowly in the Ottoman Empire?
3. What share of early books were religious?

A modern reader can estimate the scale with a little arithmetic: def pages(volumes, per_volume=300):
    return volumes * per_volume
so twenty million volumes of 300 pages is six billion printed pages, or about 12,000,000,000 sides.

Libraries changed too. Where a monastery had kept a few hundred manuscripts chained to its desks, a university in 1600 might own several thousand printed books, shelved upright with their titles on the spine. Catalogues, indexes and page numbers became ordinary tools; the idea that a reader could find "page 47, line 12" of the same edition anywhere in Europe was new. Questions that once needed a journey now needed a letter: "Do you have Euclid's Elements, printed in Venice in 1482?" The answer, increasingly, was yes."""

TEXTS = [
    "Hello world",
    "  two leading spaces, and\ttabs\tinside",
    "Ünïcödé: café, naïve, 東京, Привет, emoji 🙂!",
    "numbers 1234567 and 3.14159, dates 2026-12-03",
    "fn main() {\n    println!(\"{}\", 42);\n}\n",
    "Line one\n\nLine three\n\n\nafter three newlines",
]

PROMPTS = {
    "smollm2-135m": [
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\nWrite one sentence about the sea.<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\nWho wrote Hamlet?<|im_end|>\n<|im_start|>assistant\n",
        "The three primary colors are",
        "def fibonacci(n):\n",
    ],
    "gemma3-270m": [
        "The capital of France is",
        "Once upon a time, in a small village,",
        "Water boils at a temperature of",
        "<start_of_turn>user\nWho wrote Hamlet?<end_of_turn>\n<start_of_turn>model\n",
        "def fibonacci(n):\n",
    ],
}
GREEDY_TOKENS = 16


def llama_tool(work):
    """The llama_logits binary (built by run.py's helper on first use)."""
    exe = work / "llama_logits"
    if not exe.exists():
        llama_cpp_logits(None, [], work, build_only=True)
    return exe


def run_json(args):
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def run_ids(args):
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def compare(name, path, ours_bin, tool, work):
    print(f"{name} ({path.name}):", flush=True)
    record = {"file": path.name, "tokenize": [], "greedy": []}
    text_file = work / "text.txt"
    # Tokenization.
    same = 0
    for text in TEXTS + [LONG_TEXT]:
        text_file.write_text(text)
        ref = run_ids([str(tool), "tokenize", str(path), str(text_file)])
        got = run_json([str(ours_bin), "tokenize", str(path), str(text_file)])
        same += ref == got
        if ref != got:
            print(f"  tokenization differs on {text[:40]!r}:\n    llama.cpp {ref[:24]}\n    ours      {got[:24]}")
        if text != LONG_TEXT:
            record["tokenize"].append({"text": text, "ids": ref})
    print(f"  tokenization: {same}/{len(TEXTS) + 1} texts identical to llama.cpp", flush=True)
    # Teacher-forced logits over the long text, llama.cpp's tokens.
    text_file.write_text(LONG_TEXT)
    tokens = run_ids([str(tool), "tokenize", str(path), str(text_file)])
    ref = llama_cpp_logits(path, tokens, work)
    (work / "tokens.json").write_text(json.dumps(tokens))
    out = work / "ours.bin"
    subprocess.run([str(ours_bin), "logits", str(path), "f32", str(work / "tokens.json"), str(out)],
                   check=True)
    got = np.fromfile(out, dtype="<f4").reshape(len(tokens), -1)
    cached = np.fromfile(str(out) + ".cached", dtype="<f4").reshape(len(tokens), -1)
    vocab = min(ref.shape[1], got.shape[1])
    ref, got, cached = ref[:, :vocab], got[:, :vocab], cached[:, :vocab]
    # llama.cpp against itself: one token at a time takes its other kernels
    # (and another summation order), which is the noise floor of any
    # comparison with 8-bit activations.
    floor = llama_cpp_logits(path, tokens, work, ubatch=1)[:, :vocab]
    for label, mine in [("ours, one pass", got), ("ours, KV cache", cached),
                        ("llama.cpp one token at a time", floor)]:
        diff = np.abs(ref - mine)
        agree = float(np.mean(ref.argmax(-1) == mine.argmax(-1)))
        print(f"  teacher-forced, {len(tokens)} positions, {label}: top-1 agreement {agree:.4f}, "
              f"mean |diff| {diff.mean():.4f}, max |diff| {diff.max():.3f}, "
              f"max |logit| {np.abs(ref).max():.1f}", flush=True)
    top1 = ref.argmax(-1)
    record["forced"] = {
        "tokens": tokens,
        "top1": [int(t) for t in top1],
        "top1_logit": [round(float(ref[i, t]), 4) for i, t in enumerate(top1)],
    }
    # Greedy continuations.
    same = 0
    for prompt in PROMPTS[name]:
        text_file.write_text(prompt)
        ids = run_ids([str(tool), "tokenize", str(path), str(text_file)])
        (work / "prompt.txt").write_text(" ".join(map(str, ids)))
        (work / "prompt.json").write_text(json.dumps(ids))
        ref_ids = run_ids([str(tool), "greedy", str(path), str(work / "prompt.txt"),
                           str(GREEDY_TOKENS), "2"])
        got_ids = run_json([str(ours_bin), "greedy", str(path), str(work / "prompt.json"),
                            str(GREEDY_TOKENS)])
        same += ref_ids == got_ids
        first_diff = next((i for i, (a, b) in enumerate(zip(ref_ids, got_ids)) if a != b), None)
        print(f"  greedy {prompt[:40]!r}: "
              + ("identical" if first_diff is None else f"first differs at token {first_diff}"),
              flush=True)
        record["greedy"].append({"prompt": prompt, "prompt_ids": ids, "ids": ref_ids})
    print(f"  greedy: {same}/{len(PROMPTS[name])} continuations of {GREEDY_TOKENS} tokens identical",
          flush=True)
    return record


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=str(ROOT / "target" / "parity-real"))
    ap.add_argument("--models", default=",".join(fetch_real_models.MODELS))
    ap.add_argument("--write", action="store_true", help=f"record llama.cpp's values in {REFERENCE}")
    args = ap.parse_args()
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ours_bin = parity_bin(release=False)
    tool = llama_tool(work)
    records = {}
    for name in args.models.split(","):
        path = fetch_real_models.fetch(name)
        records[name] = compare(name, path, ours_bin, tool, work)
        records[name]["sha256"] = fetch_real_models.MODELS[name]["sha256"]
    if args.write:
        REFERENCE.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n")
        print(f"wrote {REFERENCE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
