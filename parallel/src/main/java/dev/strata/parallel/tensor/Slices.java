package dev.strata.parallel.tensor;

import dev.strata.parallel.comm.Communicator;
import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.Placement;

/**
 * A tensor-parallel slice's whole tensor, the way checkpoints see it: a checkpoint holds whole tensors, so it loads
 * at any tp ({@link Placement#take} goes the other way).
 */
public final class Slices {
    private Slices() {}

    /** The whole tensor of slice (placed as where) from every tp rank's slice; every rank of tp must call it. */
    public static Tensor gather(Communicator tp, Placement where, Tensor slice) {
        Backend backend = slice.backend();
        Tensor whole = backend.empty(slice.dtype(), where.globalShape());
        if (where.whole()) {
            backend.copyInto(slice, whole);
            return whole;
        }
        long n = slice.numel();
        int holders = tp.size() / where.shards();
        try (Tensor all = backend.empty(slice.dtype(), Math.toIntExact(n * tp.size()))) { // rank r's slice at r·n
            tp.allGather(slice.view(Math.toIntExact(n)), all).await();
            for (int s = 0; s < where.shards(); s++) where.move(s, all, s * holders * n, whole, true);
        }
        return whole;
    }
}
