"""PyTorch's CPU AdamW (fused, and foreach) over N f32 parameters, the rate Strata's CPU AdamW is measured against.

Usage: python3 tools/bench/cpu_adamw.py [params] [threads]   (one line per variant, and a BENCH line each)
"""
import json, statistics, sys, time
import torch

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 28
threads = int(sys.argv[2]) if len(sys.argv) > 2 else torch.get_num_threads()
torch.set_num_threads(threads)
for variant in ("fused", "foreach"):
    p = torch.nn.Parameter((torch.rand(n) - 0.5) * 0.02)
    p.grad = (torch.rand(n) - 0.5) * 0.02
    opt = torch.optim.AdamW([p], lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, **{variant: True})
    for _ in range(2):
        opt.step()
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
    rate = n / statistics.median(times)
    print(f"torch {variant} CPU AdamW: {n:,} f32 parameters on {threads} threads: median {1e3 * statistics.median(times):.1f} ms, {rate / 1e9:.2f} G params/s")
    print("BENCH " + json.dumps({"impl": f"torch-cpu-adamw-{variant}", "params": n, "threads": threads, "gparams_per_s": rate / 1e9}))
