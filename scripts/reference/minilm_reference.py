#!/usr/bin/env python3
"""Independent numpy reference implementation of sentence-transformers'
all-MiniLM-L6-v2 sentence embedding.

This does NOT use torch, transformers or sentence-transformers. It reads the
model's own files and re-implements the forward pass by hand in float64 numpy:

  * tokenization: HuggingFace `tokenizers` loaded from tokenizer.json, with
    truncation overridden to max_length = max_seq_length from
    sentence_bert_config.json (256) and padding disabled (tokenizer.json itself
    says truncate/pad to 128; sentence-transformers uses 256 and no fixed
    padding, so both are overridden here);
  * BERT encoder: word + position + token_type(0) embeddings, LayerNorm,
    N x [self-attention (scaled dot product, softmax) -> output dense ->
    residual -> LayerNorm -> intermediate dense -> exact erf GELU -> output
    dense -> residual -> LayerNorm]; each sentence is run alone (no padding,
    so no attention mask is needed);
  * pooling: mean over all tokens of the last hidden state ([CLS] and [SEP]
    included, as sentence-transformers does), then L2 normalization.

The output is the recorded reference used by the Rust test fixture
crates/exsearch-model/tests/fixtures/minilm_reference.json.

Regenerate the fixture (from the repository root) with:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install numpy safetensors tokenizers
    /tmp/refvenv/bin/python scripts/reference/minilm_reference.py \
        --model-dir /path/to/all-MiniLM-L6-v2 \
        --out crates/exsearch-model/tests/fixtures/minilm_reference.json

where /path/to/all-MiniLM-L6-v2 holds config.json, model.safetensors,
tokenizer.json, sentence_bert_config.json and 1_Pooling/config.json
(the sentence-transformers/all-MiniLM-L6-v2 repository snapshot).
"""

import argparse
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
    "Tokyo is the capital of Japan and its most populous city.",
    "Café au lait, naïve résumé — Zürich!",
    "The quick brown fox jumps over the lazy dog. " * 40,
]

_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x):
    """Exact (erf-based) GELU, as BERT's hidden_act "gelu"."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layer_norm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def linear(x, w, b):
    # PyTorch nn.Linear stores weight as [out, in].
    return x @ w.T + b


class Bert:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        assert cfg.get("hidden_act", "gelu") == "gelu", cfg.get("hidden_act")
        assert cfg.get("position_embedding_type", "absolute") == "absolute"
        self.hidden = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.layers = cfg["num_hidden_layers"]
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        raw = load_file(os.path.join(model_dir, "model.safetensors"))
        # Accept both "embeddings.*" and "bert.embeddings.*" layouts.
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in raw else ""
        self.prefix = prefix
        self.t = {
            k[len(prefix):]: v.astype(np.float64)
            for k, v in raw.items()
            if k.startswith(prefix) and v.dtype.kind == "f"
        }

    def w(self, name):
        return self.t[name]

    def forward(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        n = ids.shape[0]
        e = "embeddings."
        x = (
            self.w(e + "word_embeddings.weight")[ids]
            + self.w(e + "position_embeddings.weight")[np.arange(n)]
            + self.w(e + "token_type_embeddings.weight")[np.zeros(n, dtype=np.int64)]
        )
        x = layer_norm(x, self.w(e + "LayerNorm.weight"), self.w(e + "LayerNorm.bias"), self.eps)
        hd = self.hidden // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            a = p + "attention."
            q = linear(x, self.w(a + "self.query.weight"), self.w(a + "self.query.bias"))
            k = linear(x, self.w(a + "self.key.weight"), self.w(a + "self.key.bias"))
            v = linear(x, self.w(a + "self.value.weight"), self.w(a + "self.value.bias"))
            # [n, hidden] -> [heads, n, hd]
            q = q.reshape(n, self.heads, hd).transpose(1, 0, 2)
            k = k.reshape(n, self.heads, hd).transpose(1, 0, 2)
            v = v.reshape(n, self.heads, hd).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
            scores = scores - scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            ctx = (probs @ v).transpose(1, 0, 2).reshape(n, self.hidden)
            attn = linear(ctx, self.w(a + "output.dense.weight"), self.w(a + "output.dense.bias"))
            x = layer_norm(
                attn + x,
                self.w(a + "output.LayerNorm.weight"),
                self.w(a + "output.LayerNorm.bias"),
                self.eps,
            )
            h = gelu(linear(x, self.w(p + "intermediate.dense.weight"), self.w(p + "intermediate.dense.bias")))
            h = linear(h, self.w(p + "output.dense.weight"), self.w(p + "output.dense.bias"))
            x = layer_norm(
                h + x,
                self.w(p + "output.LayerNorm.weight"),
                self.w(p + "output.LayerNorm.bias"),
                self.eps,
            )
        return x


def load_tokenizer(model_dir):
    with open(os.path.join(model_dir, "sentence_bert_config.json")) as f:
        max_len = int(json.load(f)["max_seq_length"])
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    return tok, max_len


def check_pooling(model_dir):
    with open(os.path.join(model_dir, "1_Pooling", "config.json")) as f:
        pc = json.load(f)
    assert pc.get("pooling_mode_mean_tokens") is True, pc
    for m in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens"):
        assert not pc.get(m), pc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    check_pooling(args.model_dir)
    tok, max_len = load_tokenizer(args.model_dir)
    model = Bert(args.model_dir)
    print(f"tensor prefix: {model.prefix!r}; max_seq_length: {max_len}", file=sys.stderr)

    token_ids, embeddings = [], []
    for s in SENTENCES:
        ids = tok.encode(s).ids
        hs = model.forward(ids)
        pooled = hs.mean(axis=0)
        emb = pooled / max(np.linalg.norm(pooled), 1e-12)
        token_ids.append([int(i) for i in ids])
        embeddings.append(emb)
        print(f"{len(ids):4d} tokens: {s[:60]!r}", file=sys.stderr)

    E = np.stack(embeddings)
    sims = E @ E.T
    print("cosine matrix:", file=sys.stderr)
    for row in sims:
        print("  " + " ".join(f"{c:8.5f}" for c in row), file=sys.stderr)

    out = {
        "model": "all-MiniLM-L6-v2",
        "sentences": SENTENCES,
        "token_ids": token_ids,
        "embeddings": [[round(float(v), 6) for v in e] for e in embeddings],
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
