"""The PyTorch side of `device-run.sh generate`: an exported Strata checkpoint read by transformers.

1. transformers loads the directory `strata ckpt export-hf` wrote; its float64 logits for fixed token ids are
   compared with Strata's (`strata model grad --dtype f64` on the same directory, given as --strata-logits).
2. Greedy generation with transformers' KV cache, timed with CUDA events, as the tokens/s beside Strata's.
"""
import argparse

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--tokens-out", help="write the input_ids used for the logits check here, then stop")
    p.add_argument("--strata-logits", help="safetensors with Strata's logits for --tokens-out's ids")
    p.add_argument("--generate", type=int, default=0, help="tokens to generate greedily, timed")
    p.add_argument("--dtype", default="bfloat16")
    a = p.parse_args()
    ids = torch.tensor([[464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 198, 49, 2662, 46, 25, 198]], dtype=torch.int64)
    if a.tokens_out:
        save_file({"input_ids": ids}, a.tokens_out)
        return
    if a.strata_logits:
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float64).eval()
        with torch.no_grad():
            ours = model(ids).logits[0]
        theirs = load_file(a.strata_logits)["logits"].reshape(ours.shape).to(torch.float64)
        rel = ((ours - theirs).norm() / ours.norm()).item()
        worst = (ours - theirs).abs().max().item()
        print(f"EXPORT transformers float64 logits vs Strata's: relative {rel:.3e}, worst absolute {worst:.3e}")
    if a.generate:
        dt = getattr(torch, a.dtype)
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dt).cuda().eval()
        prompt = ids[:, :3].cuda()
        with torch.no_grad():
            model.generate(prompt, max_new_tokens=16, do_sample=False, min_new_tokens=16)  # warm-up
            times = []
            for _ in range(3):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                out = model.generate(prompt, max_new_tokens=a.generate, min_new_tokens=a.generate, do_sample=False)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
        n = out.shape[1] - prompt.shape[1]
        t = sorted(times)[1]
        print(f"GENERATE transformers {a.dtype} KV cache, greedy: {n} tokens in {t:.2f} s: {n / t:.1f} tokens/s (median of 3)")


if __name__ == "__main__":
    main()
