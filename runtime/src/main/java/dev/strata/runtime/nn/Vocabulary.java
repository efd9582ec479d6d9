package dev.strata.runtime.nn;

import dev.strata.runtime.Tensor;

/**
 * How the model's vocabulary-sized tensors lie over ranks: whole here ({@link #WHOLE}), or a shard of the padded
 * vocabulary's rows on each tensor-parallel rank (vocabulary parallelism), which the token embedding, a tied LM
 * head and the loss share. The model asks this and never knows which it has.
 */
public interface Vocabulary {
    /** The first row of the padded vocabulary of vp rows this rank holds. */
    int firstRow(int vp);

    /** How many rows of it this rank holds. */
    int rows(int vp);

    /** Where a table or head weight (vp, dim), of which this rank holds {@link #rows}, lies. */
    Placement placement(int vp, int dim);

    /** x (N,C): this rank's lookups (zero rows for ids held elsewhere) made the whole lookup, in place. */
    void completeLookup(Tensor x);

    /** The LM head that reads the embedding's own table (tied embeddings): logits (N, rows) of this rank's rows. */
    Linear tiedHead(Parameter table);

    /**
     * Per-row loss (N) of logits (N, rows) over a vocabulary whose first {@code classes} rows are real, as
     * {@code Backend.crossEntropy} computes it; dlogits (may be logits) receives this rank's columns' gradient.
     */
    Tensor crossEntropy(Tensor logits, int classes, Tensor targets, Tensor dlogits, double gradScale);

    /** Generation: the whole logits (N, vp) of this rank's (N, rows); logits itself when whole. */
    Tensor wholeLogits(Tensor logits);

    Vocabulary WHOLE = new Vocabulary() {
        @Override public int firstRow(int vp) { return 0; }

        @Override public int rows(int vp) { return vp; }

        @Override public Placement placement(int vp, int dim) { return Placement.replicated(new int[] {vp, dim}); }

        @Override public void completeLookup(Tensor x) {}

        @Override public Linear tiedHead(Parameter table) { return new DenseLinear(table, null); }

        @Override public Tensor crossEntropy(Tensor logits, int classes, Tensor targets, Tensor dlogits, double gradScale) {
            return logits.backend().crossEntropy(logits, classes, targets, dlogits, gradScale);
        }

        @Override public Tensor wholeLogits(Tensor logits) { return logits; }
    };
}
