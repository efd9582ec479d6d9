package dev.strata.parallel.tensor;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.runtime.Tensor;

/**
 * The column-parallel layers that read one input (wq, wk, wv; w1, w3): each adds its rank's partial input gradient
 * into the same dx, and the last to do so completes it with one all-reduce over tp, at the region's edge (Megatron's
 * f operator), instead of one per layer.
 */
final class SharedInput {
    private final Communicator tp;
    private int members, added;

    SharedInput(Communicator tp) { this.tp = tp; }

    /** One more layer reads this input (counted while the model is built). */
    void join() { members++; }

    /** A member has added its part into dx; the last one's call sums dx over the group. */
    void added(Tensor dx) {
        if (++added < members) return;
        added = 0;
        tp.allReduce(dx, ReduceOp.SUM).await();
    }
}
