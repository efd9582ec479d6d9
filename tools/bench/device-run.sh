#!/usr/bin/env bash
# On the GPU machine, from the repository root with dist/strata-node carried (./strata dist --tests builds it):
#   tools/bench/device-run.sh tests            the gpu-tagged tests
#   tools/bench/device-run.sh parity           50 bf16 training steps of Strata and PyTorch from the same weights and data
#   tools/bench/device-run.sh fp8              one linear at Llama-8B shapes, bf16 vs FP8 per rotation level, one and
#                                              four micro-batches a step; Llama-1B end to end in bf16 and FP8, full
#                                              training and LoRA, and PyTorch bf16 (eager, compile) and FP8 (compile)
#   tools/bench/device-run.sh bench [compile]  Strata's (with and without CUDA graphs) and PyTorch's training benchmarks
#                                              (eager; compile too if asked)
# Logs go to $OUT (or /tmp/strata-out); the last lines are the comparison tables.
set -uo pipefail
cd "$(dirname "$0")/../.."
LOGS="${OUT:-/tmp/strata-out}"
mkdir -p "$LOGS"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-/tmp/strata-cache}" PYTHONUNBUFFERED=1
STRATA=dist/strata-node/bin/strata

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
  *) echo "usage: $0 tests | parity | fp8 | bench [compile]" >&2; exit 2 ;;
esac
