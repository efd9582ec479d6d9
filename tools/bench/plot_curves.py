"""Validation-loss curves (JSON {run: [[step, loss], ...]}, as tools/bench/halo-accuracy.sh writes) as an SVG line
plot, with no plotting library: python3 tools/bench/plot_curves.py curves.json out.svg "title"."""
import json
import sys

curves = json.load(open(sys.argv[1]))
title = sys.argv[3] if len(sys.argv) > 3 else ""
W, H, L, R, T, B = 720, 420, 70, 170, 40, 50
steps = [s for c in curves.values() for s, _ in c]
losses = [v for c in curves.values() for _, v in c]
x0, x1 = min(steps), max(steps)
pad = (max(losses) - min(losses)) * 0.05 or 0.05
y0, y1 = min(losses) - pad, max(losses) + pad
sx = lambda s: L + (s - x0) / (x1 - x0 or 1) * (W - L - R)
sy = lambda v: T + (y1 - v) / (y1 - y0) * (H - T - B)
colors = ["#000000", "#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd"]
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>',
       f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
       f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
       f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">fine-tuning step</text>',
       f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 {(T + H - B) / 2})">validation loss</text>']
for i in range(6):
    v = y0 + (y1 - y0) * i / 5
    out.append(f'<text x="{L - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.3f}</text>')
    out.append(f'<line x1="{L}" y1="{sy(v):.1f}" x2="{W - R}" y2="{sy(v):.1f}" stroke="#eeeeee"/>')
for s in sorted(set(steps))[::max(1, len(set(steps)) // 10)]:
    out.append(f'<text x="{sx(s):.1f}" y="{H - B + 16}" text-anchor="middle">{s}</text>')
for i, (name, c) in enumerate(curves.items()):
    color = colors[i % len(colors)]
    pts = " ".join(f"{sx(s):.1f},{sy(v):.1f}" for s, v in c)
    out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
    out.append(f'<text x="{W - R + 10}" y="{T + 18 * i + 10}" fill="{color}">{name}: {c[-1][1]:.4f}</text>')
out.append("</svg>")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
