package dev.strata.trainer.model;

import dev.strata.runtime.nn.Activations;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import java.util.ArrayList;
import java.util.List;

/** One pre-norm transformer block: x + attention(norm(x)), then + feed_forward(norm(·)). */
public final class Block {
    private final Backend backend;
    private final Norm attentionNorm, ffnNorm;
    private final Attention attention;
    private final FeedForward feedForward;

    /** Kept for backward (N,C): the attention's input, the mid-block residual, the MLP's input; freed after backward. */
    private record Saved(Tensor xn1, Tensor h, Tensor xn2) {}

    public Block(Backend backend, DType dtype, String name, ModelConfig cfg, Linear.Maker linears, Rope rope) {
        this.backend = backend;
        this.attentionNorm = norm(backend, dtype, name + ".attention_norm", cfg);
        this.attention = new Attention(backend, name + ".attention", cfg, linears, rope);
        this.ffnNorm = norm(backend, dtype, name + ".ffn_norm", cfg);
        this.feedForward = new FeedForward(backend, name + ".feed_forward", cfg, linears);
    }

    static Norm norm(Backend backend, DType dtype, String name, ModelConfig cfg) {
        return cfg.family() == ModelConfig.Family.GPT2
                ? new LayerNorm(backend, dtype, name, cfg.dim(), cfg.normEps())
                : new RmsNorm(backend, dtype, name, cfg.dim(), cfg.normEps());
    }

    /** x (B*T,C) -> (B*T,C). */
    void documents(Documents documents) { attention.documents(documents); }

    public Tensor forward(Tensor x, int b, int t) { return forward(x, xn -> attention.forward(xn, b, t)); }

    /** Generation: x (B*T,C) of T new positions from {@code at}, attending over the KV caches k, v (see {@link Attention#forwardCached}). */
    public Tensor forwardCached(Tensor x, int b, int t, Tensor kCache, Tensor vCache, int at, Rope positions) {
        return forward(x, xn -> attention.forwardCached(xn, b, t, kCache, vCache, at, positions));
    }

    private Tensor forward(Tensor x, java.util.function.UnaryOperator<Tensor> attend) {
        Tensor xn1 = attentionNorm.forward(x), h;
        try (Tensor a = attend.apply(xn1)) {
            h = backend.add(x, a);
        }
        Tensor xn2 = ffnNorm.forward(h);
        Activations.current().keep(this, new Saved(xn1, h, xn2));
        try (Tensor f = feedForward.forward(xn2)) {
            return backend.add(h, f);
        }
    }

    /** dout (B*T,C) -> dx; each norm's backward adds the gradient its skip connection carries around it. */
    public Tensor backward(Tensor dout) {
        Tensor dh;
        try (Tensor df = feedForward.backward(dout)) {
            dh = ffnNorm.backward(df, dout);
        }
        Tensor dx;
        try (Tensor da = attention.backward(dh)) {
            dx = attentionNorm.backward(da, dh);
        }
        dh.close();
        discard();
        return dx;
    }

    /** Frees everything forward kept for backward; a recomputed block runs forward again before its backward. */
    public void discard() {
        attentionNorm.discard();
        attention.discard();
        ffnNorm.discard();
        feedForward.discard();
        Saved s = Activations.current().take(this);
        if (s != null) for (Tensor x : new Tensor[] {s.xn1(), s.h(), s.xn2()}) x.close();
    }

    int kvHeads() { return attention.kvHeads(); }

    public List<Parameter> parameters() {
        List<Parameter> ps = new ArrayList<>(attentionNorm.parameters());
        ps.addAll(attention.parameters());
        ps.addAll(ffnNorm.parameters());
        ps.addAll(feedForward.parameters());
        return ps;
    }
}
