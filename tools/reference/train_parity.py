"""Training parity with PyTorch on a GPU: the same Llama (saved as a Hugging Face directory), the same batches of
real text (tinyshakespeare's bytes as tokens), the same AdamW, warm-up + cosine schedule and clipping, bf16
autocast over f32 weights. Runs `strata model steps` on the same files and compares the losses step by step.

    python3 tools/reference/train_parity.py --strata dist/strata-node/bin/strata --out /tmp/parity
"""
import argparse
import json
import math
import pathlib
import subprocess
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM


def lr_at(step, peak, low, warmup, total):
    """LrSchedule.at: linear warm-up to the peak, then cosine to the minimum at the last step."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return low + 0.5 * (peak - low) * (1 + math.cos(math.pi * progress))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--strata", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--tolerance", type=float, default=0.02)
    a = p.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8,
                      num_key_value_heads=4, max_position_embeddings=1024, rope_theta=10000.0, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(out / "model")
    data = torch.tensor(list(pathlib.Path("examples/data/tinyshakespeare.txt").read_bytes()), dtype=torch.int64)
    starts = torch.randint(0, len(data) - a.seq - 1, (a.steps, a.batch), generator=torch.Generator().manual_seed(1))
    ids = torch.stack([torch.stack([data[s:s + a.seq + 1] for s in row]) for row in starts.tolist()])  # (steps, B, T+1)
    save_file({"input_ids": ids.contiguous()}, str(out / "batches.safetensors"))

    model = model.cuda().train()
    decayed = [p for n, p in model.named_parameters() if p.dim() == 2 and "embed_tokens" not in n]
    others = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "embed_tokens" not in n)]
    opt = torch.optim.AdamW([{"params": decayed, "weight_decay": a.weight_decay}, {"params": others, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    torch_losses = []
    for step in range(a.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, a.lr, a.min_lr, a.warmup, a.steps)
        x, y = ids[step, :, :-1].cuda(), ids[step, :, 1:].cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch_losses.append(loss.item())

    subprocess.run([a.strata, "model", "steps", "--model", str(out / "model"), "--tokens", str(out / "batches.safetensors"),
                    "--backend", "cuda", "--dtype", "bf16", "--lr", str(a.lr), "--min-lr", str(a.min_lr), "--warmup", str(a.warmup),
                    "--weight-decay", str(a.weight_decay), "--grad-clip", "1.0", "--out", str(out / "strata.json")],
                   check=True, stdout=subprocess.DEVNULL)
    strata_losses = json.loads((out / "strata.json").read_text())["losses"]
    worst = 0.0
    print(f"{'step':>5}{'pytorch':>10}{'strata':>10}{'rel diff':>10}")
    for i, (t, s) in enumerate(zip(torch_losses, strata_losses)):
        rel = abs(s - t) / abs(t)
        worst = max(worst, rel)
        if i < 5 or i % 5 == 4:
            print(f"{i + 1:>5}{t:>10.4f}{s:>10.4f}{rel:>10.2%}")
    print(f"bf16 training parity over {a.steps} steps: worst relative loss difference {worst:.3%} (tolerance {a.tolerance:.0%})")
    sys.exit(0 if worst <= a.tolerance else 1)


if __name__ == "__main__":
    main()
