"""Reads `BENCH {json}` lines (from `strata bench train` and torch_train.py) on stdin and prints one table per model:
tokens/s, step ms, MFU, peak memory, and Strata's ratio to each PyTorch run."""
import json
import sys

runs = [json.loads(line.split("BENCH ", 1)[1]) for line in sys.stdin if "BENCH {" in line]
for model in dict.fromkeys(r["model"] for r in runs):
    rows = [r for r in runs if r["model"] == model]
    strata = next((r for r in rows if r["impl"] == "strata"), None)
    print(f"\n{model}, batch {rows[0]['batch']} x {rows[0]['seq']}")
    print(f"{'':34}{'tokens/s':>12}{'step ms':>10}{'MFU':>8}{'peak GiB':>10}{'Strata ×':>10}")
    for r in rows:
        ratio = strata["tokens_per_s"] / r["tokens_per_s"] if strata and r is not strata else float("nan")
        print(f"{r['impl']:34}{r['tokens_per_s']:>12,.0f}{r['step_ms']:>10.1f}{100 * r['mfu']:>7.1f}%{r['peak_gib']:>10.2f}"
              + (f"{ratio:>10.2f}" if r is not strata else f"{'':>10}"))
    if strata and strata.get("ops_ms"):
        total = sum(strata["ops_ms"].values())
        print("Strata device time: " + ", ".join(f"{k} {v:.1f} ms ({100 * v / total:.0f}%)" for k, v in strata["ops_ms"].items()))
