package dev.strata.trainer.model;

import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import java.util.ArrayList;
import java.util.List;

/** Causal multi-head attention with grouped-query heads and optional rotary positions. */
public final class Attention {
    private final Backend backend;
    private final Linear wq, wk, wv, wo;
    private final int nHeads, nKvHeads, headDim;
    private final Rope rope; // null for GPT-2
    private final double scale;
    // kept for backward
    private int b, t;
    private Tensor q, k, v;  // after RoPE: (B,T,H,D), (B,T,Hkv,D), (B,T,Hkv,D)
    private Tensor out, lse; // (B,T,H,D), (B,H,T)

    public Attention(Backend backend, String name, ModelConfig cfg, Linear.Maker linears, Rope rope) {
        this.backend = backend;
        int qDim = cfg.nHeads() * cfg.headDim(), kvDim = cfg.nKvHeads() * cfg.headDim();
        this.wq = linears.make(name + ".wq", cfg.dim(), qDim, cfg.attentionBias());
        this.wk = linears.make(name + ".wk", cfg.dim(), kvDim, cfg.attentionBias());
        this.wv = linears.make(name + ".wv", cfg.dim(), kvDim, cfg.attentionBias());
        this.wo = linears.make(name + ".wo", qDim, cfg.dim(), cfg.attentionBias());
        this.nHeads = cfg.nHeads();
        this.nKvHeads = cfg.nKvHeads();
        this.headDim = cfg.headDim();
        this.rope = rope;
        this.scale = 1.0 / Math.sqrt(headDim);
    }

    /** x (B*T,C) -> (B*T,C). */
    public Tensor forward(Tensor x, int b, int t) {
        this.b = b;
        this.t = t;
        q = wq.forward(x).reshape(b, t, nHeads, headDim);
        k = wk.forward(x).reshape(b, t, nKvHeads, headDim);
        v = wv.forward(x).reshape(b, t, nKvHeads, headDim);
        if (rope != null) {
            q = rotate(q, false);
            k = rotate(k, false);
        }
        var r = backend.attentionForward(q, k, v, scale);
        out = r.out();
        lse = r.lse();
        return wo.forward(out.view(b * t, nHeads * headDim));
    }

    public Tensor backward(Tensor dy) {
        int n = b * t;
        Tensor dout = wo.backward(dy).reshape(b, t, nHeads, headDim);
        Tensor[] g = backend.attentionBackward(dout, q, k, v, out, lse, scale);
        Tensor dq = g[0], dk = g[1], dv = g[2];
        if (rope != null) {
            dq = rotate(dq, true);
            dk = rotate(dk, true);
        }
        Tensor dx = wq.backward(dq.view(n, nHeads * headDim));
        wk.backwardAccumulate(dk.view(n, nKvHeads * headDim), dx);
        wv.backwardAccumulate(dv.view(n, nKvHeads * headDim), dx);
        for (Tensor x : new Tensor[] {dout, dq, dk, dv}) x.close();
        discard();
        return dx;
    }

    /** Frees what forward kept for backward. */
    public void discard() {
        for (Linear l : List.of(wq, wk, wv, wo)) l.discard();
        for (Tensor x : new Tensor[] {q, k, v, out, lse}) if (x != null) x.close();
        q = k = v = out = lse = null;
    }

    private Tensor rotate(Tensor x, boolean inverse) {
        Tensor r = backend.rope(x, rope.cos(), rope.sin(), inverse);
        x.close();
        return r;
    }

    public List<Parameter> parameters() {
        List<Parameter> ps = new ArrayList<>();
        for (Linear l : List.of(wq, wk, wv, wo)) ps.addAll(l.parameters());
        return ps;
    }
}
