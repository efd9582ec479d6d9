package dev.strata.trainer.model;

import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;

/** A lookup table (V,C): ids (N) -> rows (N,C) in the activation dtype. */
public final class Embedding {
    private final Backend backend;
    private final Parameter weight; // (V,C)
    private final DType activations;
    private Tensor ids;             // (N)

    public Embedding(Backend backend, DType dtype, DType activations, String name, int count, int dim) {
        this.backend = backend;
        this.activations = activations;
        this.weight = new Parameter(name + ".weight", Parameter.Kind.EMBEDDING, backend.zeros(dtype, count, dim));
    }

    public Tensor forward(Tensor ids) {
        this.ids = ids;
        return backend.embeddingForward(ids, weight.value(), activations);
    }

    public void backward(Tensor dout) {
        if (weight.trainable()) backend.embeddingBackward(ids, dout, weight.grad());
        ids = null;
    }

    public Parameter weight() { return weight; }
}
