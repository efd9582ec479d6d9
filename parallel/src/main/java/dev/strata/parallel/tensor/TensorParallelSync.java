package dev.strata.parallel.tensor;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.nn.MeshDim;
import dev.strata.runtime.nn.Parameter;
import java.util.List;

/**
 * Tensor parallelism's side of a step, around the data-parallel sync of the rank's replica: the global gradient
 * norm counts each slice once and each weight the tp ranks all hold whole once (tp rank 0's), summed over tp; the
 * gradient of a slice several tp ranks hold (a shared key/value head) is summed over them before the update, as
 * each saw only its own query heads. Under sequence parallelism the weights every tp rank holds whole that act on
 * the row shard (norms and biases: the column-parallel biases are slices) have each rank's rows' part of their
 * gradient, summed over tp here too, as is a LoRA A over a column-parallel layer. Everything else is the data-parallel sync's.
 */
public final class TensorParallelSync implements GradientSync {
    private final GradientSync dataParallel;
    private final Communicator tp;
    private final boolean sequenceParallel;

    public TensorParallelSync(GradientSync dataParallel, Communicator tp) { this(dataParallel, tp, false); }

    public TensorParallelSync(GradientSync dataParallel, Communicator tp, boolean sequenceParallel) {
        this.dataParallel = dataParallel;
        this.tp = tp;
        this.sequenceParallel = sequenceParallel;
    }

    /**
     * Whether p, whole on every tp rank, has only this rank's part of its gradient: under sequence parallelism the
     * norms and biases (this rank's rows'), and a LoRA A over a column-parallel layer (this rank's output slice's).
     */
    boolean partialOverTp(Parameter p) {
        if (!p.placement().whole() || !p.placement().replicatedOver().contains(MeshDim.TP)) return false;
        return p.kind() == Parameter.Kind.LORA_A || sequenceParallel && (p.kind() == Parameter.Kind.NORM || p.kind() == Parameter.Kind.BIAS);
    }

    /** How many tp ranks hold the same copy of p: 1 for a slice of its own, tp for a whole tensor. */
    int holders(Parameter p) {
        var where = p.placement();
        return where.shardedOver() == MeshDim.TP ? tp.size() / where.shards() : where.replicatedOver().contains(MeshDim.TP) ? tp.size() : 1;
    }

    @Override public void startMicroBatch(boolean last) { dataParallel.startMicroBatch(last); }

    @Override public void gradientsDone(List<Parameter> params) { dataParallel.gradientsDone(params); }

    @Override public void reduce(List<Parameter> params, Tensor lossSum) {
        dataParallel.reduce(params, lossSum); // every tp rank computed the same loss: summed over dp only
        for (Parameter p : params) {
            if (!dataParallel.updates(p)) continue; // the tp ranks of one replica agree on it: their dp ranks match
            if (p.placement().shardedOver() == MeshDim.TP && holders(p) > 1) sumOverHolders(p);
            else if (partialOverTp(p)) tp.allReduce(p.grad(), ReduceOp.SUM).await();
        }
    }

    /**
     * One all-reduce over tp of a buffer with a slot per slice: each rank writes its gradient into its slice's slot,
     * so each slot comes back summed over exactly the ranks that hold that slice.
     */
    private void sumOverHolders(Parameter p) {
        Backend backend = p.value().backend();
        Tensor g = p.grad();
        long n = g.numel();
        int slot = p.placement().shard();
        try (Tensor slots = backend.zeros(g.dtype(), Math.toIntExact(p.placement().shards() * n))) {
            backend.copyElements(g, 0, slots, slot * n, n);
            tp.allReduce(slots, ReduceOp.SUM).await();
            backend.copyElements(slots, slot * n, g, 0, n);
        }
    }

    @Override public boolean capturable() { return false; } // collectives inside layers and between stages

    @Override public int replicas() { return dataParallel.replicas(); }

    @Override public boolean updates(Parameter p) { return dataParallel.updates(p); }

    @Override public boolean countsInNorm(Parameter p) { return tp.rank() % holders(p) == 0 && dataParallel.countsInNorm(p); }

    @Override public void reduceNormSquares(Tensor sumSquares) {
        tp.allReduce(sumSquares, ReduceOp.SUM).await();
        dataParallel.reduceNormSquares(sumSquares);
    }

    @Override public void gatherParameters(List<Parameter> params) { dataParallel.gatherParameters(params); }
}
