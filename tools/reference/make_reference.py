"""Reference outputs from Hugging Face transformers for Strata's parity tests.

Builds a tiny Llama (grouped-query attention) and a tiny GPT-2 with random weights in float64, saves each as a
Hugging Face model directory, and writes for a fixed batch of token ids: logits, the causal-LM loss and the gradient
of every parameter under its checkpoint name; then five AdamW steps (decay groups, global-norm clipping) with losses
and final weights.

transformers computes a few things in float32 whatever the model dtype (RMSNorm's variance, the RoPE tables, the
loss's logits.float()); those are patched to the model's dtype here so that float64 parity can be checked to 1e-9.
The mathematics is unchanged.

Usage: python3 make_reference.py OUT_DIR
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

torch.set_default_dtype(torch.float64)


def float64_rmsnorm(module, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return module.weight * (hidden_states * torch.rsqrt(variance + module.variance_epsilon))


def patch_llama(model):
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    theta = cfg.rope_parameters["rope_theta"] if getattr(cfg, "rope_parameters", None) else cfg.rope_theta

    def rope(x, position_ids):
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        freqs = position_ids[..., None].to(torch.float64) * inv_freq
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    model.model.rotary_emb.forward = rope
    for m in model.modules():
        if type(m).__name__ == "LlamaRMSNorm":
            m.forward = (lambda mod: (lambda h: float64_rmsnorm(mod, h)))(m)


def causal_lm_loss(logits, ids):
    """transformers' loss with labels = input_ids: mean next-token cross-entropy over batch x (seq - 1)."""
    v = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, v), ids[:, 1:].reshape(-1))


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # norms and biases: away from 1 and 0 so their gradients are exercised
                base = 1.0 if ("norm" in name or "ln_" in name) and name.endswith("weight") else 0.0
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=g))


def checkpoint_names(model, out_dir):
    """Parameter name -> the name the saved checkpoint stores (tied weights appear once)."""
    stored = set()
    idx = os.path.join(out_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        stored = set(json.load(open(idx))["weight_map"].keys())
    else:
        from safetensors import safe_open
        with safe_open(os.path.join(out_dir, "model.safetensors"), "pt") as f:
            stored = set(f.keys())
    names = {}
    for name, p in model.named_parameters():  # named_parameters lists a tied tensor once, under its first name
        if name in stored:
            names[name] = name
    return names


def make(kind, model, out, seed, batch, seq, shard):
    model.set_attn_implementation("sdpa")
    model.eval()  # no dropout; gradients still flow
    randomize(model, seed)
    if kind == "llama":
        patch_llama(model)
    d = os.path.join(out, f"tiny-{kind}")
    model.save_pretrained(d, safe_serialization=True, **({"max_shard_size": "20KB"} if shard else {}))
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=g)
    save_file({"input_ids": ids.to(torch.int64)}, os.path.join(out, f"tiny-{kind}-tokens.safetensors"))

    model.zero_grad()
    logits = model(input_ids=ids).logits
    loss = causal_lm_loss(logits, ids)
    loss.backward()
    names = checkpoint_names(model, d)
    expected = {"logits": logits.detach(), "loss": loss.detach().reshape(())}
    for name, p in model.named_parameters():
        if name in names:
            expected["grad." + names[name]] = p.grad.detach().clone()
    assert all(t.dtype in (torch.float64,) for t in expected.values())
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(out, f"tiny-{kind}-expected.safetensors"))
    print(f"{kind}: loss {loss.item():.12f}, {len(names)} parameters, {sum(p.numel() for p in model.parameters())} weights")

    # Five AdamW steps: decay only on matrices that are not embeddings, global-norm clipping, a new batch per step.
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n and "wte" not in n and "wpe" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "embed" not in n and "wte" not in n and "wpe" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    lrs = [1e-3, 2e-3, 3e-3, 2.5e-3, 1e-3]
    train = {}
    losses = []
    for step, lr in enumerate(lrs):
        batch_ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=g)
        train[f"input_ids.{step}"] = batch_ids
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        loss = causal_lm_loss(model(input_ids=batch_ids).logits, batch_ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        losses.append(loss.item())
    train["losses"] = torch.tensor(losses)
    train["lrs"] = torch.tensor(lrs)
    for name, p in model.named_parameters():
        if name in names:
            train["final." + names[name]] = p.detach().clone()
    save_file({k: v.contiguous() for k, v in train.items()}, os.path.join(out, f"tiny-{kind}-adamw.safetensors"))
    print(f"{kind}: adamw losses {losses}")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=False,
    )).to(torch.float64)
    make("llama", llama, out, seed=1234, batch=2, seq=11, shard=True)
    gpt2 = GPT2LMHeadModel(GPT2Config(
        vocab_size=71, n_embd=24, n_layer=2, n_head=3, n_positions=32, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0)).to(torch.float64)
    make("gpt2", gpt2, out, seed=99, batch=3, seq=9, shard=False)


if __name__ == "__main__":
    main()
