#!/usr/bin/env bash
# On the GPU machine, from the repository root with dist/strata-node.tar.xz carried (./strata dist --tests --pack
# builds it, about 46 MB, within the device's 64 MiB beside the tree; it is unpacked here on first use):
#   tools/bench/device-run.sh tests            the gpu-tagged tests
#   tools/bench/device-run.sh parity           50 bf16 training steps of Strata and PyTorch from the same weights and data
#   tools/bench/device-run.sh fp8              one linear at Llama-8B shapes, bf16 vs FP8 per rotation level, one and
#                                              four micro-batches a step; Llama-1B end to end in bf16 and FP8, full
#                                              training and LoRA, and PyTorch bf16 (eager, compile) and FP8 (compile)
#   tools/bench/device-run.sh bench [compile]  Strata's (with and without CUDA graphs) and PyTorch's training benchmarks
#                                              (eager; compile too if asked)
#   tools/bench/device-run.sh checkpoint       a checkpoint of GPT-2 124M and Llama-1B (weights and AdamW moments): the
#                                              synchronous save against the asynchronous pause and background write
#   tools/bench/device-run.sh generate         GPT-2 124M trained a few steps, exported to a Hugging Face directory:
#                                              transformers' float64 logits against Strata's, and generation tokens/s
#                                              of Strata (bf16, f32) and transformers (bf16, f32), KV caches both
#   tools/bench/device-run.sh finetune         a 1.09B Llama fine-tuned (LoRA and full) by Strata and by transformers + PEFT
#                                              on the same prompt/completion data: tokens/s, peak memory, eval losses of
#                                              every output loaded by transformers (Strata's adapter by PEFT)
# Logs go to $OUT (or /tmp/strata-out); the last lines are the comparison tables.
set -uo pipefail
cd "$(dirname "$0")/../.."
LOGS="${OUT:-/tmp/strata-out}"
mkdir -p "$LOGS"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-/tmp/strata-cache}" PYTHONUNBUFFERED=1
STRATA=dist/strata-node/bin/strata
[[ -x "$STRATA" ]] || tar -xJf dist/strata-node.tar.xz -C dist

case "${1:-}" in
  tests)
    dist/strata-node/bin/test-gpu > "$LOGS/gpu-tests.log" 2>&1
    rc=$?
    grep -E "✘|Exception|expected|relative error|cuda parity|cuda adamw|allocator" "$LOGS/gpu-tests.log" | head -60
    grep -E "tests (successful|failed|skipped|aborted)" "$LOGS/gpu-tests.log"
    exit $rc
    ;;
  parity)
    python3 tools/reference/train_parity.py --strata "$STRATA" --out /tmp/strata-parity 2>&1 | grep -v Warning | tee "$LOGS/parity.log"
    ;;
  fp8)
    $STRATA bench linear 2>&1 | tee "$LOGS/linear.log"
    $STRATA bench linear --micro-batches 4 2>&1 | tee "$LOGS/linear-mb4.log"
    for linear in "--linear bf16" "--linear fp8 --rotation all --scaling current" "--linear fp8 --rotation all --scaling delayed" \
                  "--linear bf16 --lora-rank 16" "--linear fp8 --rotation all --scaling delayed --lora-rank 16"; do
      $STRATA bench train --model llama-1b --batch 4 --seq 2048 $linear 2>&1 | tee -a "$LOGS/fp8-train-ops.log" | grep -E "tokens/s|BENCH|^  (gemm|attention|other)" | tee -a "$LOGS/fp8-train.log"
    done
    python3 tools/bench/torch_train.py --model llama-1b --batch 4 --seq 2048 --modes eager,compile 2>&1 | grep BENCH | tee -a "$LOGS/fp8-train.log"
    python3 tools/bench/torch_train.py --model llama-1b --batch 4 --seq 2048 --modes compile --linear fp8 2>&1 | grep BENCH | tee -a "$LOGS/fp8-train.log"
    python3 tools/bench/compare.py < "$LOGS/fp8-train.log"
    ;;
  bench)
    modes=eager; [[ "${2:-}" == compile ]] && modes=eager,compile
    for spec in "gpt2-124m 16 1024" "llama-1b 4 2048"; do
      set -- $spec
      $STRATA bench train --model "$1" --batch "$2" --seq "$3" 2>&1 | tee -a "$LOGS/bench.log"
      $STRATA bench train --model "$1" --batch "$2" --seq "$3" --cuda-graphs false 2>&1 | grep BENCH | tee -a "$LOGS/bench.log"
      python3 tools/bench/torch_train.py --model "$1" --batch "$2" --seq "$3" --modes "$modes" 2>&1 | grep -v Warning | tee -a "$LOGS/bench.log"
    done
    python3 tools/bench/compare.py < "$LOGS/bench.log" | tee "$LOGS/table.txt"
    ;;
  checkpoint)
    for model in gpt2-124m llama-1b; do
      $STRATA bench checkpoint --model "$model" --dir "/tmp/strata-bench-checkpoints-$model" 2>&1 | tee -a "$LOGS/checkpoint.log" | grep -E "^(bench|synchronous|BENCH|Exception|error)"
    done
    ;;
  generate)
    W=/tmp/strata-generate; rm -rf "$W"; mkdir -p "$W"
    $STRATA data prepare --input examples/data/tinyshakespeare.txt --out "$W/data" | tail -1
    $STRATA train examples/gpt2-124m-gpu.conf --set run_dir="$W/run" --set data.dir="$W/data" --set training.steps=30 \
      --set eval.every=0 --set checkpoint.every=0 2>&1 | tail -2 | tee "$LOGS/generate.log"
    for dt in bf16 f32; do
      $STRATA generate --checkpoint "$W/run" --backend cuda --dtype $dt --prompt "ROMEO:" --tokens 512 --temperature 0 2>&1 | tail -1 | sed "s/^/GENERATE strata $dt /" | tee -a "$LOGS/generate.log"
    done
    $STRATA generate --checkpoint "$W/run" --backend cuda --prompt "ROMEO:" --tokens 60 --seed 1 2>&1 | tee -a "$LOGS/generate.log"
    $STRATA ckpt export-hf "$W/run" --out "$W/hf" | tee -a "$LOGS/generate.log"
    python3 tools/bench/hf_generate.py --model "$W/hf" --tokens-out "$W/ids.safetensors"
    $STRATA model grad --model "$W/hf" --tokens "$W/ids.safetensors" --out "$W/grads.safetensors" --dtype f64 | tee -a "$LOGS/generate.log"
    python3 tools/bench/hf_generate.py --model "$W/hf" --strata-logits "$W/grads.safetensors" 2>&1 | grep -v Warning | tee -a "$LOGS/generate.log"
    for dt in bfloat16 float32; do
      python3 tools/bench/hf_generate.py --model "$W/hf" --generate 512 --dtype $dt 2>&1 | grep GENERATE | tee -a "$LOGS/generate.log"
    done
    ;;
  offload)
    # CPU AdamW, ours against PyTorch's on the same cores; then training steps of "PRESET BATCH SEQ ACCUM" specs with
    # the optimizer on the GPU, offloaded and interleaved (the measured split, the CPU updating during backward, both
    # sides' updates on into the next forward), the same with the GPU's subgroups updated before the forward, the same
    # with the next forward waiting for every weight, the same with the CPU updating after backward, and offloaded all
    # on the CPU after backward (ZeRO-Offload's way); one micro-batch a step shows the update's own cost, ACCUM of
    # them a realistic step; a spec may go on with STEPS and bench train options (e.g. --set model.n_heads=48 --set
    # training.grad_clip=0); VARIANTS (';'-separated bench train options, "" the GPU) replaces the six
    shift
    if [[ -z "${NO_ADAMW:-}" ]]; then
      $STRATA bench adamw --params 268435456 2>&1 | tee -a "$LOGS/offload.log" | grep -E "AdamW|BENCH"
      python3 tools/bench/cpu_adamw.py 268435456 "$(nproc)" 2>&1 | grep -v Warning | tee -a "$LOGS/offload.log"
    fi
    IFS=';' read -r -a variants <<< "${VARIANTS:-;--offload cpu --gpu-fraction auto;--offload cpu --gpu-fraction auto --set offload.update_during_forward=cpu;--offload cpu --gpu-fraction auto --set offload.update_during_forward=false;--offload cpu --gpu-fraction auto --set offload.update_during_backward=false --set offload.update_during_forward=false;--offload cpu --gpu-fraction 0 --set offload.update_during_backward=false --set offload.update_during_forward=false}"
    for spec in "${@:-llama-1b 4 2048 1}"; do
      set -- $spec
      for variant in "${variants[@]}"; do
        $STRATA bench train --model "$1" --batch "$2" --seq "$3" --accum "$4" --steps "${5:-10}" --warmup 2 "${@:6}" $variant 2>&1 | tee -a "$LOGS/offload-train.log" \
          | grep -E "offload|tokens/s|BENCH|Exception|error" | grep -v "^  "
      done
    done
    ;;
  offload-check)
    # after a change to the offload path, in one call: its GPU tests, 50 bf16 steps against the GPU optimizer's
    # losses, and one micro-batch of Llama-1B with each way of updating (the figures docs/benchmarks.md compares)
    dist/strata-node/bin/test-gpu --include-classname '.*CudaOffloadTest' > "$LOGS/gpu-tests.log" 2>&1
    grep -E "✘|tests (successful|failed)|expected" "$LOGS/gpu-tests.log" | head -20
    "$0" offload-parity "none:auto cpu:auto cpu:0" 50 2>&1 | grep -E "OFFLOAD-PARITY|offload update"
    NO_ADAMW=1 "$0" offload "llama-1b 4 2048 1 10 --set training.grad_clip=0"
    ;;
  offload-big)
    # the largest model: "PRESET BATCH SEQ ACCUM STEPS [bench train options]", the optimizer state in RAM (and on disk)
    shift
    set -- $1
    $STRATA bench train --model "$1" --batch "$2" --seq "$3" --accum "$4" --steps "$5" --warmup 1 "${@:6}" 2>&1 | tee -a "$LOGS/offload-big.log" \
      | grep -E "offload|tokens/s|Exception|rror|step|bench|^  [a-z]" | grep -v "^    "
    rc=${PIPESTATUS[0]}
    free -g | tee -a "$LOGS/offload-big.log"
    exit "$rc"
    ;;
  offload-parity)
    # bf16 steps of Llama-1B on text, variants OPTIMIZER:FRACTION[:UPDATE_DURING_FORWARD]: the first is the baseline,
    # the others are compared with it (a variant given twice measures the baseline's own run-to-run spread);
    # DETERMINISTIC (4th argument, default true) adds the GPU's sums in a fixed order, without it attention's backward
    # and the embedding's accumulate with atomics
    W=/tmp/strata-offload-parity; rm -rf "$W"; mkdir -p "$W"
    $STRATA data prepare --input examples/data/tinyshakespeare.txt --out "$W/data" | tail -1
    runs=(); i=0
    for variant in ${2:-none:auto cpu:auto cpu:0}; do
      IFS=: read -r optimizer fraction forward <<< "$variant"
      run="$i-${variant//:/-}"; runs+=("$run"); i=$((i + 1))
      $STRATA train examples/gpt2-124m-gpu.conf --set model.preset=llama-1b --set model.vocab_size=50304 --set run_dir="$W/$run" \
        --set data.dir="$W/data" --set training.steps="${3:-50}" --set training.batch_size=4 --set training.seq_len=1024 --set training.grad_accum_steps=1 \
        --set eval.every=0 --set checkpoint.every=0 --set sample.tokens=0 --set log.every=1 --set offload.optimizer="$optimizer" --set offload.gpu_fraction="$fraction" \
        ${forward:+--set offload.update_during_forward="$forward"} \
        --set training.deterministic="${4:-true}" \
        2>&1 | grep -E "offload|error" | tee -a "$LOGS/offload-parity.log"
    done
    python3 - "$W" "${runs[@]}" <<'PY' | tee -a "$LOGS/offload-parity.log"
import json, sys
def losses(d): return [json.loads(l)["loss"] for l in open(f"{sys.argv[1]}/{d}/metrics.jsonl") if '"loss"' in l and "skipped" not in l]
base = losses(sys.argv[2])
for d in sys.argv[3:]:
    o = losses(d)
    worst = max(abs(a - b) / a for a, b in zip(base, o))
    print(f"OFFLOAD-PARITY {d} against {sys.argv[2]}: {len(o)} steps, worst relative loss difference {worst:.2e}; first {base[0]:.4f}/{o[0]:.4f}, last {base[-1]:.4f}/{o[-1]:.4f}")
PY
    ;;
  finetune)
    # a 1.09B Llama (random weights, its own BPE tokenizer) fine-tuned on tinyshakespeare as prompt/completion pairs,
    # LoRA rank 16 and full, by Strata and by transformers (+ PEFT), same data, batch, sequence length and schedule;
    # then every output's eval loss through transformers (Strata's adapter through PEFT)
    W=/tmp/strata-finetune; rm -rf "$W"; mkdir -p "$W"
    python3 tools/bench/hf_finetune.py make --dir "$W" 2>&1 | grep -E "FINETUNE|Error" | tee -a "$LOGS/finetune.log"
    common=(--model "$W/base" --data "$W/train.jsonl" --eval "$W/eval.jsonl" --batch 4 --accum 4 --seq-len 1024)
    $STRATA finetune "${common[@]}" --out "$W/strata-lora" --save-adapter --lr 1e-3 2>&1 | tee "$LOGS/finetune-strata-lora.log" | grep -vE "^step " | tail -12
    $STRATA finetune "${common[@]}" --out "$W/strata-full" --full --lr 1e-4 2>&1 | tee "$LOGS/finetune-strata-full.log" | grep -vE "^step " | tail -12
    for run in strata-lora strata-full; do
      python3 - "$W/$run" "$run" <<'PY' | tee -a "$LOGS/finetune.log"
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1] + "/strata-run/metrics.jsonl")]
steps = [r for r in recs if "step_ms" in r]
s = json.load(open(sys.argv[1] + "/training_summary.json"))
ms = statistics.median(r["step_ms"] for r in steps[2:])
print("FINETUNE " + json.dumps({"impl": sys.argv[2], "steps": len(steps), "step_ms": ms, "tokens_per_s": 16 * 1024 / ms * 1e3, "peak_gib": s.get("peak_gib"),
                                "first_loss": steps[0]["loss"], "last_loss": steps[-1]["loss"], "own_eval_loss": s["final_eval_loss"]}))
PY
    done
    python3 tools/bench/hf_finetune.py train --dir "$W" --mode lora --out "$W/hf-lora" --lr 1e-3 2>&1 | grep -E "FINETUNE|Error" | tee -a "$LOGS/finetune.log"
    python3 tools/bench/hf_finetune.py train --dir "$W" --mode full --out "$W/hf-full" --lr 1e-4 2>&1 | grep -E "FINETUNE|Error" | tee -a "$LOGS/finetune.log"
    python3 tools/bench/hf_finetune.py eval --dir "$W" --name base --model "$W/base" 2>&1 | grep -E "FINETUNE|Error" | tee -a "$LOGS/finetune.log"
    python3 tools/bench/hf_finetune.py eval --dir "$W" --name strata-lora --model "$W/strata-lora" --adapter 2>&1 | grep -E "FINETUNE|Error" | tee -a "$LOGS/finetune.log"
    python3 tools/bench/hf_finetune.py eval --dir "$W" --name hf-lora --model "$W/hf-lora" --adapter 2>&1 | grep -E "FINETUNE|Error" | tee -a "$LOGS/finetune.log"
    for run in strata-full hf-full; do
      python3 tools/bench/hf_finetune.py eval --dir "$W" --name $run --model "$W/$run" 2>&1 | grep -E "FINETUNE|Error" | tee -a "$LOGS/finetune.log"
    done
    ;;
  *) echo "usage: $0 tests | parity | fp8 | bench [compile] | checkpoint | generate | offload [SPEC [STEPS [OPTIONS]]...] | offload-big SPEC | offload-parity [VARIANTS [STEPS [DETERMINISTIC]]] | finetune" >&2; exit 2 ;;
esac
