package dev.strata.parallel.tensor;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.Linear;
import java.util.List;
import java.util.Map;

/**
 * What the column- and row-parallel linears share: the slice the plan's base maker made at its size (dense, FP8),
 * whose sizes and step state they report as theirs, and the tp group. At each step's end every rank takes the
 * largest of the ranks' values in each step-state tensor (FP8 amax histories), so every shard of a layer scales
 * alike from the next step on.
 */
abstract class SlicedLinear implements Linear {
    protected final Linear local;
    protected final Communicator tp;

    SlicedLinear(Linear local, Communicator tp) {
        this.local = local;
        this.tp = tp;
    }

    @Override public int inFeatures() { return local.inFeatures(); }

    @Override public int outFeatures() { return local.outFeatures(); }

    @Override public void endStep() {
        for (Tensor t : local.stepState().values()) tp.allReduce(t, ReduceOp.MAX).await();
        local.endStep();
    }

    @Override public Map<String, Tensor> stepState() { return local.stepState(); }

    @Override public void stepStateLoaded() { local.stepStateLoaded(); }

    @Override public List<String> nonFiniteInputs() { return local.nonFiniteInputs(); }
}
