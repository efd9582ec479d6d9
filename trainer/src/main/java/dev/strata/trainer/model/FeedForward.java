package dev.strata.trainer.model;

import dev.strata.runtime.nn.Activations;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * The MLP of a block: x (N,C) -> (N,C) through F hidden units. GPT-2: w2·gelu(w1·x). Llama (SwiGLU):
 * w2·(silu(w1·x) ⊙ w3·x).
 */
public final class FeedForward {
    private final Backend backend;
    private final Linear w1, w2, w3; // w3 is null without gating

    /** Kept for backward (N,F): the pre-activation inputs h1, h3 (null without gating) and the activation a that w2 reads. */
    private record Saved(Tensor h1, Tensor h3, Tensor a) {}

    public FeedForward(Backend backend, String name, ModelConfig cfg, Linear.Maker linears) {
        this.backend = backend;
        boolean gated = cfg.family() == ModelConfig.Family.LLAMA;
        this.w1 = linears.make(name + ".w1", cfg.dim(), cfg.ffnDim(), cfg.mlpBias());
        this.w2 = linears.make(name + ".w2", cfg.ffnDim(), cfg.dim(), cfg.mlpBias());
        this.w3 = gated ? linears.make(name + ".w3", cfg.dim(), cfg.ffnDim(), cfg.mlpBias()) : null;
    }

    public Tensor forward(Tensor x) {
        Tensor h1 = w1.forward(x), h3 = null, a;
        if (w3 == null) {
            a = backend.geluForward(h1);
        } else {
            h3 = w3.forward(x);
            a = backend.swigluForward(h1, h3);
        }
        Activations.current().keep(this, new Saved(h1, h3, a));
        return w2.forward(a);
    }

    public Tensor backward(Tensor dy) {
        Saved s = Activations.current().peek(this);
        Tensor da = w2.backward(dy), dx;
        if (w3 == null) {
            try (Tensor dh1 = backend.geluBackward(da, s.h1())) {
                dx = w1.backward(dh1);
            }
        } else {
            Tensor[] g = backend.swigluBackward(da, s.h1(), s.h3());
            dx = w1.backward(g[0]);
            w3.backwardAccumulate(g[1], dx);
            g[0].close();
            g[1].close();
        }
        da.close();
        discard();
        return dx;
    }

    /** Frees what forward kept for backward. */
    public void discard() {
        w1.discard();
        w2.discard();
        if (w3 != null) w3.discard();
        Saved s = Activations.current().take(this);
        if (s != null) for (Tensor x : new Tensor[] {s.h1(), s.h3(), s.a()}) if (x != null) x.close();
    }

    public List<Parameter> parameters() {
        List<Parameter> ps = new ArrayList<>(w1.parameters());
        ps.addAll(w2.parameters());
        if (w3 != null) ps.addAll(w3.parameters());
        return ps;
    }
}
