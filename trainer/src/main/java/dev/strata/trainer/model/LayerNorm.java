package dev.strata.trainer.model;

import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import java.util.List;

/** LayerNorm with weight and bias (GPT-2). */
public final class LayerNorm implements Norm {
    private final Backend backend;
    private final Parameter weight, bias; // (C)
    private final double eps;
    private Tensor x, mean, rstd;         // (N,C), (N), (N)

    public LayerNorm(Backend backend, DType dtype, String name, int dim, double eps) {
        this.backend = backend;
        this.weight = new Parameter(name + ".weight", Parameter.Kind.NORM, backend.zeros(dtype, dim));
        this.bias = new Parameter(name + ".bias", Parameter.Kind.NORM, backend.zeros(dtype, dim));
        this.eps = eps;
    }

    @Override public Tensor forward(Tensor x) {
        var r = backend.layerNormForward(x, weight.value(), bias.value(), eps);
        this.x = x;
        this.mean = r.mean();
        this.rstd = r.rstd();
        return r.out();
    }

    @Override public Tensor backward(Tensor dout, Tensor residual) {
        Tensor dx = backend.layerNormBackward(dout, x, weight.value(), mean, rstd, weight.grad(), bias.grad(), residual);
        discard();
        return dx;
    }

    @Override public void discard() {
        if (mean != null) mean.close();
        if (rstd != null) rstd.close();
        x = mean = rstd = null;
    }

    @Override public List<Parameter> parameters() { return List.of(weight, bias); }
}
