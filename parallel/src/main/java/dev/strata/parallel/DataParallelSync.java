package dev.strata.parallel;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.ReduceOp;
import dev.strata.parallel.comm.Work;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.nn.MeshDim;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Data parallelism's side of a step, at one of three ZeRO levels. The step's gradient scale already divides by the
 * global token count, so sums are means. Gradients travel in {@link Bucket}s of about {@code parallel.bucket_mb},
 * each started on the communicator's stream as soon as backward has finished it, overlapped with the layers below.
 * <ul>
 *   <li>0: every bucket is summed on every rank (all-reduce) in the step's last micro-batch, so gradient
 *       accumulation costs one reduction per step; every rank updates everything.</li>
 *   <li>1: each parameter has one owner, whose optimizer alone holds its moments and updates it: a bucket is summed
 *       on its owner only (reduce: a reduce-scatter's traffic, at whole-parameter grain), the norm adds every owner's
 *       share, and owners then broadcast the new values a bucket at a time (an all-gather's traffic). ZeRO-1: the
 *       optimizer state is sharded over dp.</li>
 *   <li>2: as 1, and the other ranks free a bucket's gradients as soon as they are packed, so no rank holds every
 *       gradient: an owner keeps its shard, the others a few layers' worth while backward runs. Under accumulation
 *       this reduces every micro-batch, as DeepSpeed's ZeRO-2 does: the owner's gradient then carries the sum so
 *       far into the next micro-batch.</li>
 * </ul>
 * Owners are whole parameters in contiguous runs of the backward order, balanced by size (each goes to the rank
 * its midpoint falls in), so a bucket never spans two owners.
 */
public final class DataParallelSync implements GradientSync {
    private final Communicator dp;
    private final int zero;
    private final long bucketBytes;
    private Map<String, Integer> owners;                            // by parameter name, fixed by plan()
    private java.util.Set<Parameter> unowned = java.util.Set.of();  // every rank updates these; the caller reduces their gradients
    private List<Bucket> buckets;
    private final Map<Parameter, Bucket> bucketOf = new IdentityHashMap<>();
    private final List<Bucket> inFlight = new ArrayList<>();
    private boolean reducing;                                       // this micro-batch's backward starts buckets
    private boolean midStep;                                        // a micro-batch of this step has run

    public DataParallelSync(Communicator dp, int zero, long bucketBytes) {
        if (zero < 0 || zero > 2) throw new IllegalArgumentException("parallel.zero must be 0, 1 or 2, got " + zero);
        if (bucketBytes <= 0) throw new IllegalArgumentException("parallel.bucket_mb must be positive, got " + bucketBytes + " bytes");
        this.dp = dp;
        this.zero = zero;
        this.bucketBytes = bucketBytes;
    }

    public int zero() { return zero; }

    /** Assigns owners and cuts buckets over params (trainable, backward order); the same on every rank, which sees the same list. */
    public void plan(List<Parameter> params) { plan(params, java.util.Set.of()); }

    /**
     * As {@link #plan(List)}, leaving out unowned: parameters every rank updates itself, with replicated state, whose
     * gradients the caller sums over the replicas ({@link #sumOverReplicas}) before the update: a tied table whose two
     * pipeline copies must first meet.
     */
    public void plan(List<Parameter> all, java.util.Set<Parameter> unowned) {
        this.unowned = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        this.unowned.addAll(unowned);
        List<Parameter> params = all.stream().filter(p -> !this.unowned.contains(p)).toList();
        for (Parameter p : params)
            if (!p.placement().replicatedOver().contains(MeshDim.DP))
                throw new IllegalArgumentException(p.name() + " is placed as " + p.placement() + ": data parallelism syncs only what every dp rank holds whole");
        int[] of = contiguousOwners(params, dp.size());
        owners = new HashMap<>();
        for (int i = 0; i < params.size(); i++) owners.put(params.get(i).name(), of[i]);
        buckets = Bucket.cut(params, of, bucketBytes);
        bucketOf.clear();
        for (Bucket b : buckets) for (Parameter p : b.params()) bucketOf.put(p, b);
    }

    /** owners[i] of params[i]: the rank whose even share of the total size holds the parameter's midpoint. */
    static int[] contiguousOwners(List<Parameter> params, int ranks) {
        long total = params.stream().mapToLong(p -> p.value().numel()).sum(), before = 0;
        int[] owners = new int[params.size()];
        for (int i = 0; i < owners.length; i++) {
            long n = params.get(i).value().numel();
            owners[i] = (int) Math.min(ranks - 1, (2 * before + n) * ranks / Math.max(1, 2 * total));
            before += n;
        }
        return owners;
    }

    public int owner(Parameter p) {
        Integer o = owners == null ? null : owners.get(p.name());
        if (o == null) throw new IllegalStateException("parameter " + p.name() + " has no owner: plan() was not called with it");
        return o;
    }

    /** The buckets' sizes in bytes, in the order backward fills them. */
    public List<Long> bucketSizes() { return buckets.stream().map(Bucket::bytes).toList(); }

    @Override public int replicas() { return dp.size(); }

    @Override public boolean capturable() { return dp.size() == 1; }

    @Override public boolean updates(Parameter p) { return zero == 0 || unowned.contains(p) || owner(p) == dp.rank(); }

    // Sharded state: the norm adds every rank's share; an unowned parameter, updated everywhere, is counted on rank 0.
    @Override public boolean countsInNorm(Parameter p) { return zero == 0 || !unowned.contains(p) || dp.rank() == 0; }

    /** In place: t summed over the replicas (an unowned parameter's gradient). */
    public void sumOverReplicas(Tensor t) { dp.allReduce(t, ReduceOp.SUM).await(); }

    @Override public void startMicroBatch(boolean last) {
        // ZeRO-2: the last micro-batch's sums reach their owners before this backward adds to the owners' gradients.
        if (zero == 2 && midStep) flush();
        midStep = true;
        reducing = last || zero == 2;
    }

    @Override public void gradientsDone(List<Parameter> params) {
        if (!reducing) return;
        for (Parameter p : params) {
            Bucket b = bucketOf.get(p);
            if (b != null && b.done(p)) start(b);
        }
    }

    @Override public void reduce(List<Parameter> params, Tensor lossSum) {
        Work loss = dp.allReduce(lossSum, ReduceOp.SUM);
        flush();
        loss.await();
        reducing = midStep = false;
    }

    /** Starts what backward did not (a parameter no layer reported), then waits for every bucket in flight. */
    private void flush() {
        for (Bucket b : buckets) if (!b.started()) start(b);
        for (Bucket b : inFlight) b.finish(zero == 0 || b.owner() == dp.rank() ? Parameter::grad : null);
        inFlight.clear();
    }

    private void start(Bucket b) {
        b.start(Parameter::grad, flat -> zero == 0 ? dp.allReduce(flat, ReduceOp.SUM) : dp.reduce(flat, b.owner(), ReduceOp.SUM));
        if (zero == 2 && b.owner() != dp.rank()) b.params().forEach(Parameter::releaseGrad);
        inFlight.add(b);
    }

    // Both run inside the update, which a single rank captures as a CUDA graph: there they have nothing to do.
    @Override public void reduceNormSquares(Tensor sumSquares) {
        if (zero > 0 && dp.size() > 1) dp.allReduce(sumSquares, ReduceOp.SUM).await();
    }

    /** ZeRO-1/2: each owner's updated values reach every rank, a bucket per broadcast. */
    @Override public void gatherParameters(List<Parameter> params) {
        if (zero == 0 || dp.size() == 1) return;
        for (Bucket b : buckets) b.start(Parameter::value, flat -> dp.broadcast(flat, b.owner()));
        for (Bucket b : buckets) {
            boolean mine = b.owner() == dp.rank();
            b.finish(mine ? null : Parameter::value);
            if (!mine) b.params().forEach(Parameter::markUpdated);
        }
    }
}
