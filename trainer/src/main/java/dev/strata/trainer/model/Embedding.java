package dev.strata.trainer.model;

import dev.strata.runtime.nn.Activations;
import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.nn.Vocabulary;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;

/**
 * A lookup table (V,C): ids (N) -> rows (N,C) in the activation dtype. The token table may be a shard of the
 * vocabulary's rows ({@link Vocabulary}), whose lookups the vocabulary completes.
 */
public final class Embedding {
    private final Backend backend;
    private final Parameter weight; // (V,C), or this rank's (V/tp,C)
    private final DType activations;
    private final Vocabulary vocabulary;
    private final int firstRow;     // forward keeps ids (N) for backward in the micro-batch's Activations

    public Embedding(Backend backend, DType dtype, DType activations, String name, int count, int dim) {
        this(backend, dtype, activations, name, count, dim, Vocabulary.WHOLE);
    }

    public Embedding(Backend backend, DType dtype, DType activations, String name, int count, int dim, Vocabulary vocabulary) {
        this.backend = backend;
        this.activations = activations;
        this.vocabulary = vocabulary;
        this.firstRow = vocabulary.firstRow(count);
        this.weight = new Parameter(name + ".weight", Parameter.Kind.EMBEDDING, backend.zeros(dtype, vocabulary.rows(count), dim));
        weight.place(vocabulary.placement(count, dim));
    }

    public Tensor forward(Tensor ids) {
        Activations.current().keep(this, ids);
        if (vocabulary == Vocabulary.WHOLE) return backend.embeddingForward(ids, weight.value(), activations);
        Tensor x = backend.embeddingForward(ids, weight.value(), activations, firstRow);
        vocabulary.completeLookup(x);
        return x;
    }

    public void backward(Tensor dout) {
        Tensor ids = Activations.current().take(this);
        if (weight.trainable()) {
            if (vocabulary == Vocabulary.WHOLE) backend.embeddingBackward(ids, dout, weight.grad());
            else backend.embeddingBackward(ids, dout, weight.grad(), firstRow);
        }
    }

    /** Forgets the ids forward kept (no backward follows). */
    public void discard() { Activations.current().take(this); }

    public Parameter weight() { return weight; }
}
