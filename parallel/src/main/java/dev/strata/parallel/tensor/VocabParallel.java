package dev.strata.parallel.tensor;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.DenseLinear;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.MeshDim;
import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.nn.Placement;
import dev.strata.runtime.nn.Vocabulary;

/**
 * Vocabulary parallelism (Megatron-LM's): tp rank r holds rows [r·Vp/tp, (r+1)·Vp/tp) of the token embedding and of
 * the LM head, so each computes logits (N, Vp/tp) for its classes only. The loss never gathers them: each rank
 * reduces its columns to (max, sum of exponentials, target logit) per row, the ranks exchange those N×3 numbers,
 * and each computes the whole loss and its own columns' gradient. A lookup sums the ranks' rows (each gives zeros
 * for ids it does not hold).
 */
public final class VocabParallel implements Vocabulary {
    private final Communicator tp;
    private final SequenceParallel sp; // null: off; else a tied head gathers its row-sharded input

    public VocabParallel(Communicator tp) { this(tp, null); }

    public VocabParallel(Communicator tp, SequenceParallel sp) {
        this.tp = tp;
        this.sp = sp;
    }

    @Override public int firstRow(int vp) { return tp.rank() * rows(vp); }

    @Override public int rows(int vp) {
        if (vp % tp.size() != 0) throw new IllegalArgumentException("the padded vocabulary of " + vp + " rows does not split over parallel.tp = " + tp.size());
        return vp / tp.size();
    }

    @Override public Placement placement(int vp, int dim) { return Placement.sharded(new int[] {vp, dim}, 0, MeshDim.TP, tp.rank(), tp.size()); }

    @Override public void completeLookup(Tensor x) { tp.allReduce(x, ReduceOp.SUM).await(); }

    @Override public Linear tiedHead(Parameter table) { return new ColumnParallelLinear(new DenseLinear(table, null), new SharedInput(tp, sp), tp); }

    @Override public Tensor crossEntropy(Tensor logits, int classes, Tensor targets, Tensor dlogits, double gradScale) {
        Backend backend = logits.backend();
        int rows = logits.size(-1), n = (int) (logits.numel() / rows), first = tp.rank() * rows;
        int mine = Math.max(0, Math.min(rows, classes - first)); // real classes among this rank's rows
        try (Tensor stats = backend.crossEntropyStats(logits, mine, first, targets);                 // (N,3)
             Tensor all = backend.empty(stats.dtype(), tp.size(), n, 3)) {                           // (tp,N,3)
            tp.allGather(stats.view(3 * n), all.view(tp.size() * 3 * n)).await();
            return backend.crossEntropyFromStats(logits, mine, first, targets, all, dlogits, gradScale);
        }
    }

    @Override public Tensor wholeLogits(Tensor logits) {
        int rows = logits.size(-1), n = (int) (logits.numel() / rows);
        return Slices.gather(tp, Placement.sharded(new int[] {n, rows * tp.size()}, 1, MeshDim.TP, tp.rank(), tp.size()), logits.view(n, rows));
    }
}
