#!/usr/bin/env bash
# HALO accuracy on the GPU machine (dist/strata-node carried): pre-train examples/halo/pretrain.conf in bf16, then
# fine-tune it with examples/halo/finetune.conf in bf16 and in FP8 at each rotation level. Writes every run's
# validation curve to $OUT/halo-curves.json; tools/bench/plot_curves.py turns that into docs/halo-accuracy.svg.
# RUNS picks the fine-tunes, as [lora:]linear[:rotation:scaling]; a lora run trains rank-16 adapters (lr 1e-3) over
# a frozen base, e.g. RUNS="bf16 lora:bf16 lora:fp8:all:delayed" tools/bench/halo-accuracy.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
LOGS="${OUT:-/tmp/strata-out}"
mkdir -p "$LOGS"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-/tmp/strata-cache}"
S=dist/strata-node/bin/strata
$S data prepare --input examples/data/war_and_peace.txt --out runs/halo/war-and-peace > /dev/null
$S data prepare --input examples/data/tinyshakespeare.txt --out runs/halo/shakespeare > /dev/null
$S train examples/halo/pretrain.conf --overwrite 2>&1 | tr '\r' '\n' | grep -E "model:|val loss|done:" | tee "$LOGS/halo.log"
for run in ${RUNS:-bf16 fp8:none:delayed fp8:fwd:delayed fp8:fwd+dgrad:delayed fp8:all:delayed fp8:all:current}; do
  lora=()
  if [[ $run == lora:* ]]; then
    run=${run#lora:}
    lora=(--set lora.rank=16 --set lora.alpha=32 --set training.lr=1e-3 --set training.min_lr=1e-4)
  fi
  IFS=: read -r linear rotation scaling <<< "$run"
  name="${lora:+lora-}$linear${rotation:+-$rotation}${scaling:+-$scaling}"
  echo "== fine-tune $name" | tee -a "$LOGS/halo.log"
  $S train examples/halo/finetune.conf --overwrite --set "run_dir=\"runs/halo/ft-$name\"" --set "precision.linear=$linear" \
    --set "precision.rotation=\"${rotation:-all}\"" --set "precision.scaling=${scaling:-delayed}" "${lora[@]}" 2>&1 | tr '\r' '\n' \
    | grep -E "model:|val loss|done:" | tail -4 | tee -a "$LOGS/halo.log"
done
python3 - "$LOGS/halo-curves.json" <<'PY'
import json, pathlib, sys
curves = {}
for d in sorted(pathlib.Path("runs/halo").glob("ft-*")):
    recs = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
    curves[d.name[3:]] = [[r["step"], r["val_loss"]] for r in recs if "val_loss" in r]
json.dump(curves, open(sys.argv[1], "w"), indent=1)
base = curves["bf16"][-1][1]
for k, v in curves.items():
    print(f"{k:14} final val loss {v[-1][1]:.4f}  ({100 * (v[-1][1] / base - 1):+.2f}% vs bf16)")
PY
