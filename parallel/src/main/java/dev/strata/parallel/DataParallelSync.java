package dev.strata.parallel;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.parallel.comm.Work;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.GradientSync;
import java.util.ArrayList;
import java.util.List;

/**
 * Data parallelism's gradient sync: every gradient summed over the dp group (the step's gradient scale already
 * divides by the global token count), all in flight at once on the communicator's stream and awaited together, the
 * loss with them. Replicas start equal and apply equal updates, so they stay equal.
 */
public final class DataParallelSync implements GradientSync {
    private final Communicator dp;

    public DataParallelSync(Communicator dp) { this.dp = dp; }

    @Override public void reduce(List<Tensor> grads, Tensor lossSum) {
        List<Work> works = new ArrayList<>(grads.size() + 1);
        for (Tensor g : grads) works.add(dp.allReduce(g, ReduceOp.SUM));
        works.add(dp.allReduce(lossSum, ReduceOp.SUM));
        for (Work w : works) w.await();
    }

    @Override public int replicas() { return dp.size(); }
}
