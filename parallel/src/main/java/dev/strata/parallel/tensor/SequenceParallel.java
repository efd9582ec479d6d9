package dev.strata.parallel.tensor;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.SequenceLayout;

/**
 * Sequence parallelism (Megatron-LM's): between the tensor-parallel regions each tp rank carries rows
 * [r·N/tp, (r+1)·N/tp) of the (B*T, C) residual stream, so norms, residual adds and what they keep for backward
 * cost 1/tp. A region's input is all-gathered instead of copied, and its output reduce-scattered instead of
 * all-reduced: the same traffic as tensor parallelism's all-reduces. The weights every rank holds whole that act
 * on the shard (norms, row-parallel biases) get partial gradients, which {@link TensorParallelSync} sums over tp.
 */
public final class SequenceParallel implements SequenceLayout {
    private final Communicator tp;
    private boolean active = true;

    public SequenceParallel(Communicator tp) { this.tp = tp; }

    /** Whether rows are sharded now (not inside {@link #wholeRows}). */
    boolean active() { return active; }

    int size() { return tp.size(); }

    @Override public Tensor shard(Tensor x) {
        if (!active) return x;
        int n = x.size(0), c = x.size(1), rows = rowsOf(n);
        Tensor mine = x.backend().empty(x.dtype(), rows, c);
        x.backend().copyElements(x, (long) tp.rank() * rows * c, mine, 0, (long) rows * c);
        return mine;
    }

    @Override public Tensor unshard(Tensor dx) { return active ? gather(dx) : dx; }

    @Override public Scope wholeRows() {
        boolean was = active;
        active = false;
        return () -> active = was;
    }

    /** A shard (N/tp, C) -> the whole (N, C), every rank's rows in rank order. */
    Tensor gather(Tensor shard) {
        int rows = shard.size(0), c = shard.size(1);
        Tensor whole = shard.backend().empty(shard.dtype(), rows * tp.size(), c);
        tp.allGather(shard.view(rows * c), whole.view(rows * tp.size() * c)).await();
        return whole;
    }

    /** Partial sums (N, C) -> this rank's rows (N/tp, C) of their sum over tp. */
    Tensor reduceScatter(Tensor partial) {
        int n = partial.size(0), c = partial.size(1), rows = rowsOf(n);
        Tensor mine = partial.backend().empty(partial.dtype(), rows, c);
        tp.reduceScatter(partial.view(n * c), mine.view(rows * c), ReduceOp.SUM).await();
        return mine;
    }

    /** y += t, or y = t when overwrite. */
    static void write(Backend backend, Tensor t, Tensor y, boolean overwrite) {
        if (overwrite) backend.copyInto(t, y);
        else backend.addInPlace(y, t);
    }

    private int rowsOf(int n) {
        if (n % tp.size() != 0) throw new IllegalArgumentException(n + " rows (batch_size × seq_len) do not split over parallel.tp = " + tp.size());
        return n / tp.size();
    }
}
