package dev.strata.parallel;

import dev.strata.parallel.comm.Work;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import java.util.function.Function;

/**
 * Consecutive trainable parameters (in backward order) of one owner and dtype whose gradients, or values, travel
 * as one flat tensor: one large collective instead of one per tensor, started as soon as backward has finished the
 * last of them (DDP's buckets). The flat tensor lives only while its collective runs.
 */
final class Bucket {
    private final List<Parameter> params;
    private final int owner;
    private final DType dtype;
    private final long numel;
    private final Set<Parameter> pending = Collections.newSetFromMap(new IdentityHashMap<>()); // not yet final this micro-batch
    private Tensor flat; // (numel) while a collective holds it
    private Work work;

    Bucket(List<Parameter> params, int owner) {
        this.params = List.copyOf(params);
        this.owner = owner;
        this.dtype = params.get(0).value().dtype();
        this.numel = params.stream().mapToLong(p -> p.value().numel()).sum();
        pending.addAll(params);
    }

    /**
     * Cuts params (backward order; owners[i] is params[i]'s) into buckets of at most maxBytes, a new one wherever
     * the owner or the dtype changes; a parameter larger than maxBytes is a bucket of its own.
     */
    static List<Bucket> cut(List<Parameter> params, int[] owners, long maxBytes) {
        List<Bucket> buckets = new ArrayList<>();
        List<Parameter> open = new ArrayList<>();
        long bytes = 0;
        for (int i = 0; i < params.size(); i++) {
            Parameter p = params.get(i);
            long size = p.value().numel() * p.value().dtype().byteSize();
            boolean fits = !open.isEmpty() && owners[i] == owners[i - 1] && p.value().dtype() == open.get(0).value().dtype() && bytes + size <= maxBytes;
            if (!open.isEmpty() && !fits) {
                buckets.add(new Bucket(open, owners[i - 1]));
                open.clear();
                bytes = 0;
            }
            open.add(p);
            bytes += size;
        }
        if (!open.isEmpty()) buckets.add(new Bucket(open, owners[params.size() - 1]));
        return buckets;
    }

    List<Parameter> params() { return params; }

    int owner() { return owner; }

    long bytes() { return numel * dtype.byteSize(); }

    /** p's gradient is final for this micro-batch; true when that was the bucket's last. */
    boolean done(Parameter p) { return pending.remove(p) && pending.isEmpty(); }

    boolean started() { return work != null; }

    /** Packs each parameter's tensor (its gradient or its value) into a new flat tensor and starts the collective on it. */
    void start(Function<Parameter, Tensor> of, Function<Tensor, Work> collective) {
        Backend backend = params.get(0).value().backend();
        flat = backend.empty(dtype, Math.toIntExact(numel));
        long at = 0;
        for (Parameter p : params) {
            Tensor t = of.apply(p);
            backend.copyElements(t, 0, flat, at, t.numel());
            at += t.numel();
        }
        work = collective.apply(flat);
    }

    /**
     * Waits for the collective, unpacks its result into each parameter's tensor (into = null: this rank keeps
     * nothing of it), frees the flat tensor and waits for the next micro-batch's gradients.
     */
    void finish(Function<Parameter, Tensor> into) {
        work.await();
        if (into != null) {
            long at = 0;
            for (Parameter p : params) {
                Tensor t = into.apply(p);
                flat.backend().copyElements(flat, at, t, 0, t.numel());
                at += t.numel();
            }
        }
        flat.close();
        flat = null;
        work = null;
        pending.addAll(params);
    }
}
