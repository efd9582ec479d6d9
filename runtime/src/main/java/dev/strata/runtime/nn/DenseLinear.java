package dev.strata.runtime.nn;

import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import java.util.ArrayList;
import java.util.List;

/** The plain linear layer: weight (out,in) as Hugging Face and PyTorch store it, optional bias (out). */
public final class DenseLinear implements Linear {
    private final Backend backend;
    private final Parameter weight; // (out,in)
    private final Parameter bias;   // (out) or null; forward keeps x (N,in) for dW in the micro-batch's Activations

    public DenseLinear(Parameter weight, Parameter bias) {
        this.backend = weight.value().backend();
        this.weight = weight;
        this.bias = bias;
    }

    /** The {@link Linear.Maker} for dense layers with parameters in the given dtype. */
    public static Linear.Maker maker(Backend backend, DType dtype) {
        return (name, in, out, hasBias) -> new DenseLinear(
                new Parameter(name + ".weight", Parameter.Kind.LINEAR_WEIGHT, backend.zeros(dtype, out, in)),
                hasBias ? new Parameter(name + ".bias", Parameter.Kind.BIAS, backend.zeros(dtype, out)) : null);
    }

    @Override public int inFeatures() { return weight.shape()[1]; }

    @Override public int outFeatures() { return weight.shape()[0]; }

    @Override public void forward(Tensor x, Tensor y, double beta) {
        if (bias == null) backend.matmul(x, false, weight.valueAs(x.dtype()), true, y, 1, beta);
        else backend.matmulBias(x, false, weight.valueAs(x.dtype()), true, y, beta, bias.valueAs(y.dtype()));
        Activations.current().keep(this, x);
    }

    @Override public void backward(Tensor dy, Tensor dx, double beta) {
        Activations ctx = Activations.current();
        Tensor x = ctx.take(this);
        if (weight.trainable() && ctx.defersWeightGradients()) {
            Tensor dyKept = copy(dy), xKept = copy(x);                                       // the caller frees dy, its owner x
            ctx.defer(() -> {
                backend.matmul(dyKept, true, xKept, false, weight.grad(), 1, 1);
                dyKept.close();
                xKept.close();
            });
        } else if (weight.trainable()) {
            backend.matmul(dy, true, x, false, weight.grad(), 1, 1);                          // dW (out,in) += dyᵀ·x
        }
        if (bias != null && bias.trainable()) backend.sumRowsAccumulate(dy, bias.grad());       // db (out) += Σ_rows dy
        backend.matmul(dy, false, weight.valueAs(dy.dtype()), false, dx, 1, beta);
    }

    @Override public void discard() { Activations.current().take(this); }

    private Tensor copy(Tensor t) {
        Tensor c = backend.empty(t.dtype(), t.shape());
        backend.copyInto(t, c);
        return c;
    }

    @Override public List<Parameter> parameters() {
        List<Parameter> ps = new ArrayList<>(List.of(weight));
        if (bias != null) ps.add(bias);
        return ps;
    }
}
