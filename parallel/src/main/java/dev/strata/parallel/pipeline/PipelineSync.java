package dev.strata.parallel.pipeline;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.nn.Parameter;
import java.util.List;

/**
 * Pipeline parallelism's side of a step, around the stage's tensor- and data-parallel sync: only the last stage has
 * a loss, summed over pp so every stage reports it; each stage holds different layers, so the gradient norm's
 * squares are summed over pp. Tied embeddings (GPT-2) live on the first stage (the lookup) and the last (the head)
 * as two copies of one weight, which stay equal: each copy's gradient is summed over the replicas (the
 * data-parallel sync leaves it out of its buckets and owners), then the two stages swap their gradients and both add
 * them, so both updates see the whole gradient; the norm counts the first stage's copy.
 */
public final class PipelineSync implements GradientSync {
    private final GradientSync inner;
    private final Communicator pp;
    private final Parameter tied; // this stage's copy of a weight the first and last stages share, or null
    private final java.util.function.Consumer<Tensor> sumOverReplicas;

    /** sumOverReplicas: sums a tensor over the data-parallel replicas (nothing to do without them). */
    public PipelineSync(GradientSync inner, Communicator pp, Parameter tied, java.util.function.Consumer<Tensor> sumOverReplicas) {
        this.inner = inner;
        this.pp = pp;
        this.tied = tied;
        this.sumOverReplicas = sumOverReplicas;
    }

    private boolean last() { return pp.rank() == pp.size() - 1; }

    @Override public void startMicroBatch(boolean last) { inner.startMicroBatch(last); }

    @Override public void gradientsDone(List<Parameter> params) { inner.gradientsDone(params); }

    @Override public void reduce(List<Parameter> params, Tensor lossSum) {
        inner.reduce(params, lossSum);
        pp.allReduce(lossSum, ReduceOp.SUM).await();
        if (tied == null || pp.size() == 1 || !tied.trainable()) return;
        sumOverReplicas.accept(tied.grad());
        // first: send, then receive; last: receive, then send; each adds the other's: g_first + g_last either way
        Tensor g = tied.grad(), other = g.backend().empty(g.dtype(), g.shape());
        int peer = last() ? 0 : pp.size() - 1;
        if (last()) {
            pp.recv(other, peer).await();
            pp.send(g, peer).await();
        } else {
            pp.send(g, peer).await();
            pp.recv(other, peer).await();
        }
        g.backend().addInPlace(g, other);
        other.close();
    }

    @Override public boolean capturable() { return false; } // collectives inside layers and between stages

    @Override public int replicas() { return inner.replicas(); }

    @Override public boolean updates(Parameter p) { return inner.updates(p); }

    @Override public boolean countsInNorm(Parameter p) { return !(p == tied && last()) && inner.countsInNorm(p); }

    @Override public void reduceNormSquares(Tensor sumSquares) {
        inner.reduceNormSquares(sumSquares);
        pp.allReduce(sumSquares, ReduceOp.SUM).await();
    }

    @Override public void gatherParameters(List<Parameter> params) { inner.gatherParameters(params); }
}
