package dev.strata.trainer.model;

import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.Tensor;
import java.util.List;

/** A normalisation over the channel dimension: x (N,C) -> (N,C). */
public sealed interface Norm permits LayerNorm, RmsNorm {
    Tensor forward(Tensor x);

    /** dx (N,C) from dout (N,C), plus residual unless null: a skip connection's gradient, added in the same pass. */
    Tensor backward(Tensor dout, Tensor residual);

    /** Frees what forward kept for backward, when backward will not run (evaluation, recomputation). */
    void discard();

    List<Parameter> parameters();
}
