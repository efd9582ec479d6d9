package dev.strata.runtime.nn;

import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A LoRA adapter on a linear layer (Hu et al., 2021): y = base(x) + (alpha/r)·(x·Aᵀ)·Bᵀ with A (r,in) and B (out,r).
 * The base, dense or FP8, is used as it is; when its weight is frozen it skips its own weight gradient. The
 * adapter's two thin GEMMs run in the activations' dtype (bf16 on the GPU) whatever the base runs in. The adapter
 * writes its part of y (and of dx) first and the base's GEMM adds into it, so y and dx take no pass of their own.
 */
public final class LoraLinear implements Linear {
    private final Backend backend;
    private final Linear base;
    private final Parameter a;   // (r,in)
    private final Parameter b;   // (out,r)
    private final double scale;  // alpha / r
    private java.util.function.Consumer<Tensor> completeProjection = h -> {}; // a row-parallel base's slice: x·Aᵀ summed over tp

    /** Kept for backward: x (N,in) for dA, h = x·Aᵀ (N,r) for dB. */
    private record Saved(Tensor x, Tensor h) {}

    public LoraLinear(Linear base, Parameter a, Parameter b, double scale) {
        if (a.kind() != Parameter.Kind.LORA_A || b.kind() != Parameter.Kind.LORA_B || a.shape()[0] != b.shape()[1])
            throw new IllegalArgumentException("a LoRA adapter takes A (r,in) and B (out,r) of one rank r, got " + a + ", " + b);
        this.backend = a.value().backend();
        this.base = base;
        this.a = a;
        this.b = b;
        this.scale = scale;
    }

    /**
     * Over a layer that reads a slice of its input (row-parallel), A holds the same slice and x·Aᵀ is a partial sum:
     * complete (in place, e.g. an all-reduce over tp) makes it whole before B, so y gets the whole adapter's output.
     */
    public void completeProjection(java.util.function.Consumer<Tensor> complete) { this.completeProjection = complete; }

    @Override public int inFeatures() { return base.inFeatures(); }

    @Override public int outFeatures() { return base.outFeatures(); }

    /** y = s·(x·Aᵀ)·Bᵀ + beta·y, then the base adds x·Wᵀ + b. */
    @Override public void forward(Tensor x, Tensor y, double beta) {
        discardAdapter();
        Tensor h = backend.empty(x.dtype(), x.size(0), a.shape()[0]);                          // (N,r)
        backend.matmul(x, false, a.valueAs(x.dtype()), true, h, 1, 0);                        // h = x·Aᵀ
        completeProjection.accept(h);
        backend.matmul(h, false, b.valueAs(x.dtype()), true, y, scale, beta);                 // y = s·h·Bᵀ + beta·y
        base.forward(x, y, 1);
        Activations.current().keep(this, new Saved(x, h));
    }

    @Override public void backward(Tensor dy, Tensor dx, double beta) {
        adapterBackward(dy, dx, beta);
        base.backward(dy, dx, 1);
    }

    /** dB += s·dyᵀ·h; dh = s·dy·B; dA += dhᵀ·x; dx = dh·A + beta·dx. */
    private void adapterBackward(Tensor dy, Tensor dx, double beta) {
        Saved s = Activations.current().peek(this);
        Tensor x = s.x(), h = s.h();
        try (Tensor dh = backend.empty(dy.dtype(), dy.size(0), a.shape()[0])) {             // (N,r)
            if (b.trainable()) backend.matmul(dy, true, h, false, b.grad(), scale, 1);
            backend.matmul(dy, false, b.valueAs(dy.dtype()), false, dh, scale, 0);
            if (a.trainable()) backend.matmul(dh, true, x, false, a.grad(), 1, 1);
            backend.matmul(dh, false, a.valueAs(dh.dtype()), false, dx, 1, beta);
        }
        discardAdapter();
    }

    private void discardAdapter() {
        Saved s = Activations.current().take(this);
        if (s != null) s.h().close();
    }

    @Override public void discard() {
        base.discard();
        discardAdapter();
    }

    @Override public void endStep() { base.endStep(); }

    @Override public Map<String, Tensor> stepState() { return base.stepState(); }

    @Override public void stepStateLoaded() { base.stepStateLoaded(); }

    @Override public List<String> nonFiniteInputs() { return base.nonFiniteInputs(); }

    @Override public List<Parameter> parameters() {
        List<Parameter> ps = new ArrayList<>(base.parameters());
        ps.add(a);
        ps.add(b);
        return ps;
    }
}
