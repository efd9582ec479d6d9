package dev.strata.parallel.tensor;

import dev.strata.parallel.comm.Communicator;
import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.Placement;

/**
 * Between a tensor-parallel slice and its whole tensor, the way checkpoints see them: a checkpoint holds whole
 * tensors, so it loads at any tp. A slice is a block of whole rows of the sharded dimension: per index of the
 * dimensions before it ("outer"), a run of local × inner elements.
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
            for (int s = 0; s < where.shards(); s++) copyRuns(backend, where, all, s * holders * n, whole, s, true);
        }
        return whole;
    }

    /** Copies the slice of whole that where names into slice. */
    public static void take(Placement where, Tensor whole, Tensor slice) {
        Backend backend = slice.backend();
        if (where.whole()) backend.copyInto(whole, slice);
        else copyRuns(backend, where, slice, 0, whole, where.shard(), false);
    }

    /** Moves shard's runs between a packed slice (from element at) and whole, in the direction toWhole says. */
    private static void copyRuns(Backend backend, Placement where, Tensor packed, long at, Tensor whole, int shard, boolean toWhole) {
        int[] global = where.globalShape(), local = where.localShape();
        int dim = where.shardedDim();
        long inner = 1, outer = 1;
        for (int d = dim + 1; d < global.length; d++) inner *= global[d];
        for (int d = 0; d < dim; d++) outer *= global[d];
        long run = local[dim] * inner;
        for (long o = 0; o < outer; o++) {
            long w = (o * global[dim] + (long) shard * local[dim]) * inner, p = at + o * run;
            if (toWhole) backend.copyElements(packed, p, whole, w, run);
            else backend.copyElements(whole, w, packed, p, run);
        }
    }
}
