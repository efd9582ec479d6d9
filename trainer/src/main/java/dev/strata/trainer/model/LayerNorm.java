package dev.strata.trainer.model;

import dev.strata.runtime.nn.Activations;
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

    /** Kept for backward: x (N,C), mean (N), rstd (N). */
    private record Saved(Tensor x, Tensor mean, Tensor rstd) {}

    public LayerNorm(Backend backend, DType dtype, String name, int dim, double eps) {
        this.backend = backend;
        this.weight = new Parameter(name + ".weight", Parameter.Kind.NORM, backend.zeros(dtype, dim));
        this.bias = new Parameter(name + ".bias", Parameter.Kind.NORM, backend.zeros(dtype, dim));
        this.eps = eps;
    }

    @Override public Tensor forward(Tensor x) {
        var r = backend.layerNormForward(x, weight.value(), bias.value(), eps);
        Activations.current().keep(this, new Saved(x, r.mean(), r.rstd()));
        return r.out();
    }

    @Override public Tensor backward(Tensor dout, Tensor residual) {
        Saved s = Activations.current().peek(this);
        Tensor dx = backend.layerNormBackward(dout, s.x(), weight.value(), s.mean(), s.rstd(), weight.grad(), bias.grad(), residual);
        discard();
        return dx;
    }

    @Override public void discard() {
        Saved s = Activations.current().take(this);
        if (s == null) return;
        s.mean().close();
        s.rstd().close();
    }

    @Override public List<Parameter> parameters() { return List.of(weight, bias); }
}
