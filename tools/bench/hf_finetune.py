"""The Hugging Face side of the fine-tuning benchmark (tools/bench/device-run.sh finetune).

    python3 hf_finetune.py make  --dir D            a base model and data: a byte-level BPE tokenizer trained on
                                                    tinyshakespeare, a Llama of 1.09B parameters (Llama-3.2-1B's
                                                    layout, head_dim 64) with random weights, prompt/completion pairs
    python3 hf_finetune.py train --dir D --mode lora|full --out O --batch B --accum A --seq T --lr LR
                                                    transformers' Trainer (and PEFT for LoRA) on the same data
    python3 hf_finetune.py eval  --dir D --name N --model M [--adapter]
                                                    the eval set's loss per completion token of a model directory
                                                    (transformers; with --adapter, PEFT over the base)

Each prints one `FINETUNE {json}` line. Losses are the mean over completion tokens (prompt and padding -100), as
Strata's, so both sides' numbers compare.
"""
import argparse
import json
import os
import statistics
import time

import torch

EOS = "<|endoftext|>"


def make(d):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM
    os.makedirs(f"{d}/base", exist_ok=True)
    text = open("examples/data/tinyshakespeare.txt", encoding="utf-8").read()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([text[i:i + 10000] for i in range(0, len(text), 10000)],
                            trainers.BpeTrainer(vocab_size=32000, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(f"{d}/base/tokenizer.json")
    json.dump({"eos_token": EOS, "bos_token": None, "pad_token": EOS, "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 2048},
              open(f"{d}/base/tokenizer_config.json", "w"))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                      num_key_value_heads=8, head_dim=64, max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False,
                      eos_token_id=tok.token_to_id(EOS), bos_token_id=None, pad_token_id=tok.token_to_id(EOS))
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(f"{d}/base")
    # real text as prompt/completion pairs: a passage's opening lines ask for the rest of it
    pairs = []
    for start in range(0, len(text) - 3200, 1100):
        passage = text[start:start + 3200]
        pairs.append({"prompt": passage[:700], "completion": passage[700:]})
    with open(f"{d}/train.jsonl", "w") as f:
        for p in pairs[:-64]: f.write(json.dumps(p) + "\n")
    with open(f"{d}/eval.jsonl", "w") as f:
        for p in pairs[-64:]: f.write(json.dumps(p) + "\n")
    print("FINETUNE " + json.dumps({"made": d, "parameters": sum(p.numel() for p in model.parameters()), "vocab": tok.get_vocab_size(),
                                    "train": len(pairs) - 64, "eval": 64}))


def examples(d, file, tokenizer, seq):
    """input_ids and labels as Strata builds them: prompt ids, completion ids, EOS; labels -100 on the prompt; cut to seq + 1."""
    eos = tokenizer.convert_tokens_to_ids(EOS)
    out = []
    for line in open(f"{d}/{file}"):
        e = json.loads(line)
        p = tokenizer(e["prompt"], add_special_tokens=False)["input_ids"]
        c = tokenizer(e["completion"], add_special_tokens=False)["input_ids"] + [eos]
        ids, labels = (p + c)[:seq + 1], ([-100] * len(p) + c)[:seq + 1]
        out.append((ids, labels))
    return out


def collate(batch, pad):
    """Rows of inputs ids[:-1] and labels ids[1:] (the shift Strata makes), padded to the batch's longest."""
    n = max(len(ids) - 1 for ids, _ in batch)
    x = torch.full((len(batch), n), pad, dtype=torch.long)
    y = torch.full((len(batch), n), -100, dtype=torch.long)
    for r, (ids, labels) in enumerate(batch):
        x[r, :len(ids) - 1] = torch.tensor(ids[:-1])
        y[r, :len(ids) - 1] = torch.tensor(labels[1:])
    return x, y


def train(a):
    from transformers import AutoTokenizer, LlamaForCausalLM, get_cosine_schedule_with_warmup
    tokenizer = AutoTokenizer.from_pretrained(f"{a.dir}/base")
    pad = tokenizer.convert_tokens_to_ids(EOS)
    data = examples(a.dir, "train.jsonl", tokenizer, a.seq)
    torch.manual_seed(1)
    # as their users run them: LoRA over a bf16 base (PEFT keeps the adapters in f32), a full fine-tune in mixed
    # precision over f32 weights (Trainer's bf16=True)
    base_dtype = torch.bfloat16 if a.mode == "lora" else torch.float32
    model = LlamaForCausalLM.from_pretrained(f"{a.dir}/base", dtype=base_dtype, attn_implementation="sdpa").cuda()
    if a.mode == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    params = [p for p in model.parameters() if p.requires_grad]
    # transformers' Trainer defaults: AdamW (fused), betas 0.9/0.999, no weight decay, clipping at 1, cosine after 3% warm-up
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, fused=True)
    per_step = a.batch * a.accum
    steps = (len(data) + per_step - 1) // per_step
    sched = get_cosine_schedule_with_warmup(opt, int(-(-steps * 0.03 // 1)), steps)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(1)).tolist()
    torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    model.train()
    for step in range(steps):
        rows = [data[order[(step * per_step + i) % len(data)]] for i in range(per_step)]
        trained = sum(sum(1 for l in labels[1:] if l != -100) for _, labels in rows)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        total = 0.0
        for m in range(a.accum):
            x, y = collate(rows[m * a.batch:(m + 1) * a.batch], pad)
            x, y = x.cuda(), y.cuda()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = model(input_ids=x).logits
            loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=-100, reduction="sum") / trained
            loss.backward()
            total += loss.detach()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
        losses.append(float(total))
    peak = torch.cuda.max_memory_allocated() / 2**30
    model.save_pretrained(a.out)
    step_ms = statistics.median(times[2:]) if len(times) > 4 else statistics.median(times)
    print("FINETUNE " + json.dumps({"impl": f"hf-{a.mode}", "steps": steps, "step_ms": step_ms, "tokens_per_s": per_step * a.seq / step_ms * 1e3,
                                    "peak_gib": peak, "first_loss": losses[0], "last_loss": losses[-1]}))


@torch.no_grad()
def evaluate(a):
    from transformers import AutoTokenizer, LlamaForCausalLM
    tokenizer = AutoTokenizer.from_pretrained(f"{a.dir}/base")
    pad = tokenizer.convert_tokens_to_ids(EOS)
    if a.adapter:
        from peft import PeftModel
        model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(f"{a.dir}/base", dtype=torch.float32), a.model).cuda()
    else:
        model = LlamaForCausalLM.from_pretrained(a.model, dtype=torch.float32).cuda()
    model.eval()
    data = examples(a.dir, "eval.jsonl", tokenizer, a.seq)
    total, count = 0.0, 0
    for i in range(0, len(data), 4):
        x, y = collate(data[i:i + 4], pad)
        x, y = x.cuda(), y.cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        total += float(torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=-100, reduction="sum"))
        count += int((y != -100).sum())
    print("FINETUNE " + json.dumps({"eval": a.name, "model": a.model, "adapter": a.adapter, "eval_loss": total / count}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["make", "train", "eval"])
    p.add_argument("--dir", required=True)
    p.add_argument("--mode", choices=["lora", "full"])
    p.add_argument("--out")
    p.add_argument("--model")
    p.add_argument("--name")
    p.add_argument("--adapter", action="store_true")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--accum", type=int, default=4)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--lr", type=float, default=2e-4)
    a = p.parse_args()
    {"make": lambda: make(a.dir), "train": lambda: train(a), "eval": lambda: evaluate(a)}[a.what]()
