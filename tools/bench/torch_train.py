"""The PyTorch side of `strata bench train`: the same model, batch and sequence, BF16 autocast over FP32 weights,
fused AdamW, gradient clipping; eager and torch.compile. Prints one `BENCH {json}` line per run.

    python3 torch_train.py --model gpt2-124m --batch 16 --seq 1024 [--modes eager,compile] [--linear fp8]

--linear fp8 runs every linear but the LM head through torch._scaled_mm with per-tensor current scaling (E4M3
activations and weights, E5M2 gradients), torchao.float8's "tensorwise" recipe written out, for machines where
torchao is not installed; under torch.compile the amax, scale and cast fuse as they do with torchao.
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
E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2


def to_fp8(t, dtype):
    """t's codes at per-tensor current scaling, and the inverse scale _scaled_mm multiplies back."""
    fmax = torch.finfo(dtype).max
    scale = fmax / t.abs().max().float().clamp(min=1e-12)
    return (t.float() * scale).clamp(-fmax, fmax).to(dtype), scale.reciprocal()


def column_major(t):
    """The same matrix stored column by column, the layout _scaled_mm wants for its second operand."""
    return t.t().contiguous().t()


class Fp8Matmul(torch.autograd.Function):
    """y = x·wᵀ with its three GEMMs in FP8: y and dx in bf16, dw in f32 for the f32 master weight."""

    @staticmethod
    def forward(ctx, x, w):
        shape = x.shape
        xq, xs = to_fp8(x.reshape(-1, shape[-1]), E4M3)
        wq, ws = to_fp8(w, E4M3)
        ctx.save_for_backward(xq, xs, wq, ws)
        ctx.shape = shape
        return torch._scaled_mm(xq, wq.t(), scale_a=xs, scale_b=ws, out_dtype=torch.bfloat16).reshape(*shape[:-1], -1)

    @staticmethod
    def backward(ctx, dy):
        xq, xs, wq, ws = ctx.saved_tensors
        dyq, dys = to_fp8(dy.reshape(-1, dy.shape[-1]), E5M2)
        dx = torch._scaled_mm(dyq, column_major(wq), scale_a=dys, scale_b=ws, out_dtype=torch.bfloat16)
        dw = torch._scaled_mm(dyq.t().contiguous(), column_major(xq), scale_a=dys, scale_b=xs, out_dtype=torch.float32)
        return dx.reshape(ctx.shape), dw


class Fp8Linear(torch.nn.Module):
    def __init__(self, linear):
        super().__init__()
        self.weight = linear.weight

    def forward(self, x):
        return Fp8Matmul.apply(x, self.weight)


def check_fp8():
    """Correct before fast: y, dx and dw of Fp8Matmul against the bf16 product, within FP8's few percent."""
    g = torch.Generator(device="cuda").manual_seed(2)
    x = torch.randn(256, 512, device="cuda", generator=g, dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(384, 512, device="cuda", generator=g, requires_grad=True)
    dy = torch.randn(256, 384, device="cuda", generator=g, dtype=torch.bfloat16)
    got = [Fp8Matmul.apply(x, w)]
    got += torch.autograd.grad(got[0], (x, w), dy)
    want = [x.float() @ w.t()]
    want += torch.autograd.grad(want[0], (x, w), dy.float())
    for name, a, b in zip(("y", "dx", "dw"), got, want):
        err = ((a.float() - b).norm() / b.norm()).item()
        assert err < 0.08, f"FP8 {name} is {err:.3f} off the bf16 product"


def to_fp8_linears(model):
    """Every bias-free linear of the decoder layers in FP8; the LM head stays bf16, as in Strata's default."""
    for block in model.model.layers:
        for parent in block.modules():
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.nn.Linear) and child.bias is None:
                    setattr(parent, name, Fp8Linear(child))
    return model


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


def bench(name, mode, batch, seq, warmup, steps, linear):
    torch.manual_seed(0)
    model = PRESETS[name]().cuda().train()
    if linear == "fp8":
        check_fp8()
        model = to_fp8_linears(model)
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
    print("BENCH " + json.dumps({"impl": f"torch-{'fp8-' if linear == 'fp8' else ''}{mode}", "model": name, "batch": batch, "seq": seq, "tokens_per_s": round(tps, 1),
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
    p.add_argument("--linear", default="bf16", choices=["bf16", "fp8"])
    a = p.parse_args()
    for m in a.modes.split(","):
        bench(a.model, m, a.batch, a.seq, a.warmup, a.steps, a.linear)
