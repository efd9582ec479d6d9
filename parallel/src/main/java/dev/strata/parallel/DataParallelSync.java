package dev.strata.parallel;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.parallel.comm.Work;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Data parallelism's side of a step, at one of three ZeRO levels. The step's gradient scale already divides by the
 * global token count, so sums are means.
 * <ul>
 *   <li>0: every gradient is summed on every rank (all-reduce); every rank updates everything.</li>
 *   <li>1: the same sums, but each parameter has one owner, whose optimizer alone holds its state and updates it;
 *       the owner then broadcasts the new value (ZeRO-1: optimizer state sharded over dp).</li>
 *   <li>2: each gradient is summed on its owner only (reduce), so the others' copies hold nothing useful after it;
 *       the norm is completed from every owner's share (ZeRO-2's communication; its gradient memory is still
 *       allocated per parameter on every rank).</li>
 * </ul>
 * Owners are whole parameters, balanced by size (largest first to the least loaded rank), as PyTorch's
 * ZeroRedundancyOptimizer partitions. A layer's gradients start reducing as soon as the step's last backward has
 * finished that layer, on the communicator's stream, while backward goes on below it (one reduction per step under
 * accumulation); the update waits for all of them.
 */
public final class DataParallelSync implements GradientSync {
    private final Communicator dp;
    private final int zero;
    private Map<String, Integer> owners; // by parameter name, fixed at the first step
    private boolean last;                // the step's last micro-batch is in backward
    private final Map<Parameter, Work> started = new java.util.IdentityHashMap<>(); // reductions begun during it

    public DataParallelSync(Communicator dp, int zero) {
        if (zero < 0 || zero > 2) throw new IllegalArgumentException("parallel.zero must be 0, 1 or 2, got " + zero);
        this.dp = dp;
        this.zero = zero;
    }

    public int zero() { return zero; }

    /** Assigns every trainable parameter an owner; the same on every rank, since every rank sees the same list. */
    public void plan(List<Parameter> params) {
        owners = balance(params, dp.size());
    }

    static Map<String, Integer> balance(List<Parameter> params, int ranks) {
        List<Parameter> bySize = new ArrayList<>(params);
        bySize.sort((a, b) -> Long.compare(b.value().numel(), a.value().numel())); // stable: ties keep backward order
        long[] load = new long[ranks];
        Map<String, Integer> owners = new HashMap<>();
        for (Parameter p : bySize) {
            int least = 0;
            for (int r = 1; r < ranks; r++) if (load[r] < load[least]) least = r;
            owners.put(p.name(), least);
            load[least] += p.value().numel();
        }
        return owners;
    }

    public int owner(Parameter p) {
        Integer o = owners == null ? null : owners.get(p.name());
        if (o == null) throw new IllegalStateException("parameter " + p.name() + " has no owner: plan() was not called with it");
        return o;
    }

    @Override public int replicas() { return dp.size(); }

    @Override public boolean updates(Parameter p) { return zero == 0 || owner(p) == dp.rank(); }

    @Override public void lastMicroBatch() { last = true; }

    /** During the last backward: a layer's gradients are final, so their reductions start while the layers below run. */
    @Override public void gradientsDone(List<Parameter> params) {
        if (!last) return;
        for (Parameter p : params) if (p.trainable() && !started.containsKey(p)) started.put(p, start(p));
    }

    @Override public void reduce(List<Parameter> params, Tensor lossSum) {
        List<Work> works = new ArrayList<>(params.size() + 1);
        for (Parameter p : params) works.add(started.containsKey(p) ? started.get(p) : start(p));
        works.add(dp.allReduce(lossSum, ReduceOp.SUM));
        works.forEach(Work::await);
        started.clear();
        last = false;
    }

    private Work start(Parameter p) { return zero == 2 ? dp.reduce(p.grad(), owner(p), ReduceOp.SUM) : dp.allReduce(p.grad(), ReduceOp.SUM); }

    @Override public void reduceNormSquares(Tensor sumSquares) {
        if (zero > 0) dp.allReduce(sumSquares, ReduceOp.SUM).await();
    }

    @Override public void gatherParameters(List<Parameter> params) {
        if (zero == 0) return;
        List<Work> works = new ArrayList<>(params.size());
        for (Parameter p : params) works.add(dp.broadcast(p.value(), owner(p)));
        works.forEach(Work::await);
        for (Parameter p : params) if (owner(p) != dp.rank()) p.markUpdated();
    }

    /**
     * Every rank ends with each tensor as its parameter's owner holds it (tensors[i] belongs to ofParameter[i]): how
     * a checkpoint gets the whole optimizer state, which ZeRO keeps in shares. Nothing to do without ZeRO.
     */
    public void shareFromOwners(List<Tensor> tensors, List<Parameter> ofParameter) {
        if (zero == 0) return;
        List<Work> works = new ArrayList<>(tensors.size());
        for (int i = 0; i < tensors.size(); i++) works.add(dp.broadcast(tensors.get(i), owner(ofParameter.get(i))));
        works.forEach(Work::await);
    }
}
