"""The PyTorch side of `strata bench train`: the same model, batch and sequence, BF16 autocast over FP32 weights,
fused AdamW, gradient clipping; eager and torch.compile. Prints one `BENCH {json}` line per run.

    python3 torch_train.py --model gpt2-124m --batch 16 --seq 1024 [--modes eager,compile]
"""
import argparse
import json
import statistics

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

# The presets of cluster-config's reference.conf.
PRESETS = {
    "gpt2-124m": lambda: GPT2LMHeadModel(GPT2Config(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024,
                                                    activation_function="gelu_new", resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)),
    "llama-1b": lambda: LlamaForCausalLM(LlamaConfig(vocab_size=32000, hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                                                     num_key_value_heads=8, intermediate_size=5632, max_position_embeddings=2048,
                                                     rope_theta=10000.0, tie_word_embeddings=False)),
}
BF16_PEAK_TFLOPS = {"H100 PCIe": 756, "H100": 989.4, "H200": 989.4, "A100": 312}


def flops_per_token(model, seq):
    """6 per matmul weight plus attention's 12·L·H·D·T, as ModelConfig.trainingFlopsPerToken counts."""
    c = model.config
    if c.model_type == "gpt2":
        layers, dim, q, kv, ffn, mats = c.n_layer, c.n_embd, c.n_embd, c.n_embd, 4 * c.n_embd, 2
    else:
        hd = c.hidden_size // c.num_attention_heads
        layers, dim, q, kv, ffn, mats = c.num_hidden_layers, c.hidden_size, c.num_attention_heads * hd, c.num_key_value_heads * hd, c.intermediate_size, 3
    weights = layers * (2 * dim * q + 2 * dim * kv + mats * dim * ffn) + c.vocab_size * dim
    return 6.0 * weights + 12.0 * layers * q * seq


def bench(name, mode, batch, seq, warmup, steps):
    torch.manual_seed(0)
    model = PRESETS[name]().cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    gen = torch.Generator(device="cuda").manual_seed(1)
    batches = [torch.randint(0, model.config.vocab_size, (batch, seq + 1), device="cuda", generator=gen) for _ in range(4)]

    def step(tokens):
        x, y = tokens[:, :-1], tokens[:, 1:]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    fwd = torch.compile(model) if mode == "compile" else model
    torch.cuda.reset_peak_memory_stats()
    for i in range(warmup):
        step(batches[i % 4])
    torch.cuda.synchronize()
    times = []
    for i in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step(batches[i % 4])
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    ms = statistics.median(times)
    tps = batch * seq / (ms / 1e3)
    dev = torch.cuda.get_device_name()
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if all(w in dev for w in k.split())), float("nan"))
    mfu = flops_per_token(model, seq) * tps / 1e12 / peak
    print("BENCH " + json.dumps({"impl": f"torch-{mode}", "model": name, "batch": batch, "seq": seq, "tokens_per_s": round(tps, 1),
                                 "step_ms": round(ms, 3), "mfu": round(mfu, 4),
                                 "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)}), flush=True)
    del model, opt, fwd, batches
    torch.cuda.empty_cache()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="gpt2-124m", choices=sorted(PRESETS))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--modes", default="eager,compile")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=30)
    a = p.parse_args()
    for m in a.modes.split(","):
        bench(a.model, m, a.batch, a.seq, a.warmup, a.steps)
