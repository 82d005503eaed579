#!/usr/bin/env python3
"""Parity of our decoder with independent implementations, on identical
random weights at real shapes.

    python3 scripts/parity/run.py [--configs qwen2.5-0.5b,llama3.2-1b,qwen3-0.6b]
                                  [--positions 300] [--work target/parity]
                                  [--llama-cpp] [--llama-cpp-only]

For each config: `parity write` (our fixture writer) puts random weights in a
Hugging Face folder; HF transformers (CPU, eager attention) computes logits of
`--positions` random tokens; `parity logits` computes ours, in one pass and
through the KV cache. Reported: max |logit difference| and the largest logit
(f32 and bf16), and greedy-token agreement. With --llama-cpp (after
scripts/build-llama-bench.sh), the GGUF Q8_0 file of the same weights is
compared with llama.cpp's logits (scripts/parity/llama_logits.cpp).

Needs: torch, transformers, numpy (pip install torch transformers numpy).
Not run in CI: the weights are several GB and HF's forward is slow on 2 cores.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]


def parity_bin(release=True):
    profile = "release" if release else "debug"
    subprocess.run(
        ["cargo", "build", "-q", "-p", "exsearch-model", "--example", "parity"]
        + (["--release"] if release else []),
        cwd=ROOT, check=True)
    return ROOT / "target" / profile / "examples" / "parity"


def hf_logits(model_dir, tokens, dtype):
    import torch
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=dtype, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor([tokens])).logits[0].float().numpy()
    return out


def ours(binary, model, dtype, tokens, work):
    tok_file = work / "tokens.json"
    tok_file.write_text(json.dumps(tokens))
    out = work / f"ours-{dtype}.bin"
    subprocess.run([str(binary), "logits", str(model), dtype, str(tok_file), str(out)], check=True)
    full = np.fromfile(out, dtype="<f4").reshape(len(tokens), -1)
    cached = np.fromfile(str(out) + ".cached", dtype="<f4").reshape(len(tokens), -1)
    return full, cached


def llama_cpp_logits(gguf, tokens, work, build_only=False, ubatch=None):
    """Logits from llama.cpp through scripts/parity/llama_logits.cpp, built
    against the library that scripts/build-llama-bench.sh builds (all tokens
    in one micro-batch, or `ubatch` at a time)."""
    llama = ROOT / "target" / "llama.cpp"
    exe = work / "llama_logits"
    if not exe.exists():
        libs = sorted({str(p.parent) for p in (llama / "build").rglob("*.so")})
        subprocess.run(
            ["g++", "-O2", "-std=c++17", str(ROOT / "scripts/parity/llama_logits.cpp"),
             "-I", str(llama / "include"), "-I", str(llama / "ggml/include"), "-o", str(exe)]
            + [f"-L{d}" for d in libs] + [f"-Wl,-rpath,{d}" for d in libs] + ["-lllama", "-lggml", "-lggml-base"],
            check=True)
    if build_only:
        return None
    tok_file = work / "tokens.txt"
    tok_file.write_text(" ".join(map(str, tokens)))
    out = work / "llama-cpp.bin"
    subprocess.run([str(exe), str(gguf), str(tok_file), str(out), "2"]
                   + ([str(ubatch)] if ubatch else []), check=True, stderr=subprocess.DEVNULL)
    return np.fromfile(out, dtype="<f4").reshape(len(tokens), -1)


def report(name, ref, got):
    diff = np.abs(ref - got)
    agree = float(np.mean(ref.argmax(-1) == got.argmax(-1)))
    print(f"  {name:<34} max|diff| {diff.max():.3e}  mean|diff| {diff.mean():.3e}  "
          f"max|logit| {np.abs(ref).max():.2f}  argmax agree {agree:.3f}", flush=True)
    return float(diff.max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="qwen2.5-0.5b,llama3.2-1b,qwen3-0.6b")
    ap.add_argument("--positions", type=int, default=300)
    ap.add_argument("--work", default=str(ROOT / "target" / "parity"))
    ap.add_argument("--llama-cpp", action="store_true")
    ap.add_argument("--skip-bf16", action="store_true")
    ap.add_argument("--llama-cpp-only", action="store_true",
                    help="no transformers: GGUF Q8_0, ours against llama.cpp, and both against our f32")
    args = ap.parse_args()
    if args.llama_cpp_only:
        return llama_cpp_only(args)
    import torch
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    binary = parity_bin()
    rng = np.random.default_rng(0)
    worst = 0.0
    for config in args.configs.split(","):
        print(f"{config}:", flush=True)
        for dtype, torch_dtype in [("f32", torch.float32), ("bf16", torch.bfloat16)]:
            if dtype == "bf16" and args.skip_bf16:
                continue
            model_dir = work / f"{config}-{dtype}"
            if not (model_dir / "model.safetensors").exists():
                t = time.time()
                subprocess.run([str(binary), "write", config, dtype, str(model_dir)], check=True)
                print(f"  wrote {model_dir.name} in {time.time() - t:.0f} s", flush=True)
            vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
            tokens = [int(x) for x in rng.integers(0, vocab, args.positions)]
            ref = hf_logits(model_dir, tokens, torch_dtype)
            full, cached = ours(binary, model_dir, dtype, tokens, work)
            d = report(f"{dtype} one pass vs transformers", ref, full)
            report(f"{dtype} KV cache vs transformers", ref, cached)
            if dtype == "bf16":
                # The noise floor: how far bf16 transformers is from f32 transformers.
                ref32 = hf_logits(model_dir, tokens, torch.float32)
                report("bf16 transformers vs f32 transformers", ref32, ref)
                report("bf16 ours vs f32 transformers", ref32, full)
            if dtype == "f32":
                worst = max(worst, d)
            if dtype == "f32" and args.llama_cpp:
                gguf = work / f"{config}-q8_0.gguf"
                if not gguf.exists():
                    subprocess.run([str(binary), "gguf", str(model_dir), str(gguf), "q8_0"], check=True)
                ref_q = llama_cpp_logits(gguf, tokens, work)
                full_q, cached_q = ours(binary, gguf, "f32", tokens, work)
                report("q8_0 ours vs llama.cpp", ref_q, full_q)
                report("q8_0 ours (cache) vs llama.cpp", ref_q, cached_q)
                report("q8_0 llama.cpp vs f32 transformers", ref, ref_q)
                report("q8_0 ours vs f32 transformers", ref, full_q)
    print(f"worst f32 max|diff|: {worst:.3e} ({'PASS' if worst < 1e-3 else 'FAIL'} < 1e-3)")
    sys.exit(0 if worst < 1e-3 else 1)


def llama_cpp_only(args):
    """The quantized comparison alone (needs numpy, not torch)."""
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    binary = parity_bin()
    rng = np.random.default_rng(0)
    for config in args.configs.split(","):
        print(f"{config}:", flush=True)
        model_dir = work / f"{config}-f32"
        if not (model_dir / "model.safetensors").exists():
            subprocess.run([str(binary), "write", config, "f32", str(model_dir)], check=True)
        vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
        tokens = [int(x) for x in rng.integers(0, vocab, args.positions)]
        gguf = work / f"{config}-q8_0.gguf"
        if not gguf.exists():
            subprocess.run([str(binary), "gguf", str(model_dir), str(gguf), "q8_0"], check=True)
        ref_q = llama_cpp_logits(gguf, tokens, work)
        full_q, cached_q = ours(binary, gguf, "f32", tokens, work)
        full, cached = ours(binary, model_dir, "f32", tokens, work)
        report("f32 ours: one pass vs KV cache", full, cached)
        report("q8_0 ours vs llama.cpp", ref_q, full_q)
        report("q8_0 ours (cache) vs llama.cpp", ref_q, cached_q)
        report("q8_0 llama.cpp vs f32 ours", full, ref_q)
        report("q8_0 ours vs f32 ours", full, full_q)


if __name__ == "__main__":
    main()
