package dev.strata.trainer.model;

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
    private Tensor x, rstd;         // (N,C), (N)

    public RmsNorm(Backend backend, DType dtype, String name, int dim, double eps) {
        this.backend = backend;
        this.weight = new Parameter(name + ".weight", Parameter.Kind.NORM, backend.zeros(dtype, dim));
        this.eps = eps;
    }

    @Override public Tensor forward(Tensor x) {
        var r = backend.rmsNormForward(x, weight.value(), eps);
        this.x = x;
        this.rstd = r.rstd();
        return r.out();
    }

    @Override public Tensor backward(Tensor dout, Tensor residual) {
        Tensor dx = backend.rmsNormBackward(dout, x, weight.value(), rstd, weight.grad(), residual);
        discard();
        return dx;
    }

    @Override public void discard() {
        if (rstd != null) rstd.close();
        x = rstd = null;
    }

    @Override public List<Parameter> parameters() { return List.of(weight); }
}
