package dev.strata.runtime.nn;

import dev.strata.runtime.Tensor;

/**
 * Which rows of the residual stream (B*T, C) this rank carries between the tensor-parallel regions: every row
 * ({@link #WHOLE}), or a contiguous 1/tp of them (sequence parallelism), where norms and residual adds work on the
 * shard and the regions' edges gather and scatter. The model asks this at the embedding and never knows which.
 */
public interface SequenceLayout {
    /** x (N,C), whole on every rank -> the rows this rank carries: a new tensor, or x itself when whole. */
    Tensor shard(Tensor x);

    /** Backward of {@link #shard}: dx of this rank's rows -> dx (N,C) whole: a new tensor, or dx itself. */
    Tensor unshard(Tensor dx);

    /** Generation feeds a few rows that do not split: until the returned handle closes, every rank carries all of them. */
    Scope wholeRows();

    interface Scope extends AutoCloseable {
        @Override void close();
    }

    SequenceLayout WHOLE = new SequenceLayout() {
        @Override public Tensor shard(Tensor x) { return x; }

        @Override public Tensor unshard(Tensor dx) { return dx; }

        @Override public Scope wholeRows() { return () -> {}; }
    };
}
