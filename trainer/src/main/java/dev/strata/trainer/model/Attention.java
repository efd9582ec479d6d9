package dev.strata.trainer.model;

import dev.strata.runtime.nn.Activations;
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
    private Documents documents; // null: one example a row

    /**
     * Kept for backward: q, k, v after RoPE (B,T,H,D), (B,T,Hkv,D), (B,T,Hkv,D); out (B,T,H,D); lse (B,H,T); the
     * batch's documents (null: one a row).
     */
    private record Saved(int b, int t, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Documents documents) {}

    public Attention(Backend backend, String name, ModelConfig cfg, Linear.Maker linears, Rope rope) {
        this.backend = backend;
        int qDim = cfg.nHeads() * cfg.headDim(), kvDim = cfg.nKvHeads() * cfg.headDim();
        this.wq = linears.make(name + ".wq", cfg.dim(), qDim, cfg.attentionBias());
        this.wk = linears.make(name + ".wk", cfg.dim(), kvDim, cfg.attentionBias());
        this.wv = linears.make(name + ".wv", cfg.dim(), kvDim, cfg.attentionBias());
        this.wo = linears.make(name + ".wo", qDim, cfg.dim(), cfg.attentionBias());
        // The heads this rank computes, from its linears: a tensor-parallel plan gives each rank a share of them.
        this.headDim = cfg.headDim();
        this.nHeads = heads(wq, name + ".wq");
        this.nKvHeads = heads(wk, name + ".wk");
        if (nKvHeads == 0 || nHeads % nKvHeads != 0 || heads(wv, name + ".wv") != nKvHeads || wo.inFeatures() != nHeads * headDim)
            throw new IllegalArgumentException(name + ": " + nHeads + " query heads and " + nKvHeads + " key/value heads do not form groups");
        this.rope = rope;
        this.scale = 1.0 / Math.sqrt(headDim);
    }

    /** The packed examples of the batches that follow (null: one a row). */
    void documents(Documents documents) { this.documents = documents; }

    /** The key/value heads this rank computes. */
    int kvHeads() { return nKvHeads; }

    private int heads(Linear l, String name) {
        if (l.outFeatures() % headDim != 0)
            throw new IllegalArgumentException(name + " makes " + l.outFeatures() + " features, not whole heads of " + headDim);
        return l.outFeatures() / headDim;
    }

    /** x (B*T,C) -> (B*T,C). */
    public Tensor forward(Tensor x, int b, int t) {
        Tensor q = wq.forward(x).reshape(b, t, nHeads, headDim);
        Tensor k = wk.forward(x).reshape(b, t, nKvHeads, headDim);
        Tensor v = wv.forward(x).reshape(b, t, nKvHeads, headDim);
        Documents docs = documents;
        if (rope != null) {
            q = rotate(q, docs, false);
            k = rotate(k, docs, false);
        }
        var r = backend.attentionForward(q, k, v, scale, docs == null ? null : docs.starts);
        Activations.current().keep(this, new Saved(b, t, q, k, v, r.out(), r.lse(), docs));
        return wo.forward(r.out().view(b * t, nHeads * headDim));
    }

    /**
     * Generation: x (B*T,C) of T new positions from {@code at} -> (B*T,C). Their keys and values go into the caches
     * k, v (B,Tmax,Hkv,D); the queries attend over everything cached. {@code positions}: RoPE rows of [at, at + T).
     */
    public Tensor forwardCached(Tensor x, int b, int t, Tensor kCache, Tensor vCache, int at, Rope positions) {
        Tensor q = wq.forward(x).reshape(b, t, nHeads, headDim);
        Tensor k = wk.forward(x).reshape(b, t, nKvHeads, headDim);
        Tensor v = wv.forward(x).reshape(b, t, nKvHeads, headDim);
        if (positions != null) {
            q = rotate(q, positions, false);
            k = rotate(k, positions, false);
        }
        backend.copyIntoPositions(k, kCache, at);
        backend.copyIntoPositions(v, vCache, at);
        try (Tensor attended = backend.attentionCached(q, kCache, vCache, at + t, scale)) {
            return wo.forward(attended.view(b * t, nHeads * headDim));
        } finally {
            for (Tensor y : new Tensor[] {q, k, v}) y.close();
        }
    }

    public Tensor backward(Tensor dy) {
        Saved s = Activations.current().peek(this);
        int n = s.b() * s.t();
        Tensor dout = wo.backward(dy).reshape(s.b(), s.t(), nHeads, headDim);
        Documents docs = s.documents();
        Tensor[] g = backend.attentionBackward(dout, s.q(), s.k(), s.v(), s.out(), s.lse(), scale, docs == null ? null : docs.starts);
        Tensor dq = g[0], dk = g[1], dv = g[2];
        if (rope != null) {
            dq = rotate(dq, docs, true);
            dk = rotate(dk, docs, true);
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
        Saved s = Activations.current().take(this);
        if (s != null) for (Tensor x : new Tensor[] {s.q(), s.k(), s.v(), s.out(), s.lse()}) x.close();
    }

    private Tensor rotate(Tensor x, Rope tables, boolean inverse) {
        Tensor r = backend.rope(x, tables.cos(), tables.sin(), inverse);
        x.close();
        return r;
    }

    /** RoPE at each token's position in its document: x (B,T,H,D) seen as one row of B·T tokens against their tables. */
    private Tensor rotate(Tensor x, Documents docs, boolean inverse) {
        if (docs == null) return rotate(x, rope, inverse);
        int[] shape = x.shape();
        Tensor r = backend.rope(x.view(1, shape[0] * shape[1], shape[2], shape[3]), docs.rope.cos(), docs.rope.sin(), inverse);
        x.close();
        return r.reshape(shape);
    }

    public List<Parameter> parameters() {
        List<Parameter> ps = new ArrayList<>();
        for (Linear l : List.of(wq, wk, wv, wo)) ps.addAll(l.parameters());
        return ps;
    }
}
