package dev.strata.parallel.tensor;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.Activations;

/**
 * The column-parallel layers that read one input (wq, wk, wv; w1, w3; the LM head): Megatron's f operator at the
 * region's edge, once for all of them. Forward: the input as is, or under sequence parallelism all-gathered from the
 * ranks' row shards (once, the other members reuse it). Backward: each member adds its rank's partial input
 * gradient, and the last one's call completes it with one all-reduce over tp, or, under sequence parallelism, one
 * reduce-scatter into the caller's row shard.
 */
final class SharedInput {
    /** Under sp, kept from forward to backward in the micro-batch's Activations: the shard forward saw and its whole rows (N,in). */
    private record Gathered(Tensor from, Tensor whole) {}

    /** Where a member writes its partial input gradient, and with which beta. */
    record Target(Tensor dx, double beta) {}

    private final Communicator tp;
    private final SequenceParallel sp; // null: rows are not sharded
    private int members, added;
    private Tensor partial;                // under sp: the members' summed partial dx (N,in) while backward runs
    private boolean overwrite;             // under sp: the first member was asked to write dx, not add to it

    SharedInput(Communicator tp, SequenceParallel sp) {
        this.tp = tp;
        this.sp = sp;
    }

    /** One more layer reads this input (counted while the model is built). */
    void join() { members++; }

    private boolean sharded() { return sp != null && sp.active(); }

    /** Rows of the members' output for x's rows. */
    int outputRows(int inputRows) { return sharded() ? inputRows * sp.size() : inputRows; }

    /** Rows of the input gradient for dy's rows. */
    int inputRows(int outputRows) { return sharded() ? outputRows / sp.size() : outputRows; }

    /** What a member multiplies: x, or its rows gathered from every rank. */
    Tensor input(Tensor x) {
        if (!sharded()) return x;
        Gathered g = Activations.current().peek(this);
        if (g == null || g.from() != x) {
            discard();
            g = new Gathered(x, sp.gather(x));
            Activations.current().keep(this, g);
        }
        return g.whole();
    }

    /** Where a member writes its part of dx (the caller's, beta as asked): dx itself, or the region's whole-row sum. */
    Target target(Tensor dx, double beta) {
        if (!sharded()) return new Target(dx, beta);
        if (partial == null) {
            partial = dx.backend().empty(dx.dtype(), dx.size(0) * sp.size(), dx.size(1));
            overwrite = beta == 0;
            return new Target(partial, 0);
        }
        return new Target(partial, 1);
    }

    /** A member has added its part; the last one's call sums dx over the group. */
    void added(Tensor dx) {
        if (++added < members) return;
        added = 0;
        if (!sharded()) {
            tp.allReduce(dx, ReduceOp.SUM).await();
            return;
        }
        try (Tensor mine = sp.reduceScatter(partial)) {
            SequenceParallel.write(dx.backend(), mine, dx, overwrite);
        }
        partial.close();
        partial = null;
        discard();
    }

    /** Frees the gathered input (after the region's backward, or when no backward follows). */
    void discard() {
        Gathered g = Activations.current().take(this);
        if (g != null) g.whole().close();
    }
}
