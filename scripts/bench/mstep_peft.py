#!/usr/bin/env python3
"""The peer of `cargo bench -p exsearch-train --bench mstep`: LoRA training
steps with PyTorch + PEFT on the same model folder, threads, batch and
sequence length. Prints one JSON line: tokens/s, seconds per step, peak RSS.

    python3 scripts/bench/mstep_peft.py MODEL_DIR --threads 2 --batch 4 --seq 256 --steps 3

Same work as ours: f32, LoRA r16 alpha 32 dropout 0.05 on the seven
projections, mean next-token cross-entropy over every token, AdamW (lr 1e-4,
weight decay 0), gradient clipping at 1.0, one untimed step first.
"""
import argparse
import json
import resource
import time


def token_ids(batch, seq, vocab):
    # The bench's xorshift stream, so both sides see the same ids.
    x = 0x2545F4914F6CDD1D
    mask = (1 << 64) - 1
    rows = []
    for _ in range(batch):
        row = []
        for _ in range(seq):
            x ^= (x << 13) & mask
            x ^= x >> 7
            x ^= (x << 17) & mask
            row.append(x % vocab)
        rows.append(row)
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    a = p.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(
        a.model, dtype=torch.float32, attn_implementation="eager")
    config = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                        "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, config)
    model.train()
    vocab = min(model.config.vocab_size, 150_000)
    ids = torch.tensor(token_ids(a.batch, a.seq, vocab))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    times = []
    for _ in range(a.steps + 1):
        t = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    timed = sum(times[1:])
    print(json.dumps({
        "tokens_per_s": a.batch * a.seq * a.steps / timed,
        "step_s": timed / a.steps,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
