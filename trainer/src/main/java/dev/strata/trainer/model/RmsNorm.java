package dev.strata.trainer.model;

import dev.strata.runtime.nn.Activations;
import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import java.util.List;

/** RMSNorm with a weight and no bias (Llama). */
public final class RmsNorm implements Norm {
    private final Backend backend;
    private final Parameter weight; // (C)
    private final double eps;

    /** Kept for backward: x (N,C), rstd (N). */
    private record Saved(Tensor x, Tensor rstd) {}

    public RmsNorm(Backend backend, DType dtype, String name, int dim, double eps) {
        this.backend = backend;
        this.weight = new Parameter(name + ".weight", Parameter.Kind.NORM, backend.zeros(dtype, dim));
        this.eps = eps;
    }

    @Override public Tensor forward(Tensor x) {
        var r = backend.rmsNormForward(x, weight.value(), eps);
        Activations.current().keep(this, new Saved(x, r.rstd()));
        return r.out();
    }

    @Override public Tensor backward(Tensor dout, Tensor residual) {
        Saved s = Activations.current().peek(this);
        Tensor dx = backend.rmsNormBackward(dout, s.x(), weight.value(), s.rstd(), weight.grad(), residual);
        discard();
        return dx;
    }

    @Override public void discard() {
        Saved s = Activations.current().take(this);
        if (s != null) s.rstd().close();
    }

    @Override public List<Parameter> parameters() { return List.of(weight); }
}
