package dev.strata.runtime.nn;

import dev.strata.runtime.Tensor;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Set;

/**
 * What forward keeps for backward, for one micro-batch: each layer files what it saves here under itself and takes
 * it back in backward. A pipeline schedule has several micro-batches in flight on a stage, each with a context of its
 * own, and binds the one whose forward or backward runs next to the computing thread; outside a schedule each
 * thread has one context, so a layer never holds a micro-batch's tensors in its fields.
 */
public final class Activations {
    private static final ThreadLocal<Activations> CURRENT = ThreadLocal.withInitial(Activations::new);

    private final Map<Object, Object> kept = new IdentityHashMap<>();
    private java.util.List<Runnable> deferred; // weight gradients put off to a later pass (zero-bubble), or null: computed at once

    /** The context of the micro-batch this thread computes now. */
    public static Activations current() { return CURRENT.get(); }

    /** Until the returned scope closes, this is the thread's current context. */
    public Scope bind() {
        Activations before = CURRENT.get();
        CURRENT.set(this);
        return () -> CURRENT.set(before);
    }

    public interface Scope extends AutoCloseable {
        @Override void close();
    }

    /** Files what layer saves for its backward (replacing what it filed before). */
    public void keep(Object layer, Object saved) { kept.put(layer, saved); }

    /** Takes back what layer filed (null if nothing): it is the caller's again. */
    @SuppressWarnings("unchecked")
    public <T> T take(Object layer) { return (T) kept.remove(layer); }

    /** What layer filed, left in place. */
    @SuppressWarnings("unchecked")
    public <T> T peek(Object layer) { return (T) kept.get(layer); }

    public boolean isEmpty() { return kept.isEmpty() && (deferred == null || deferred.isEmpty()); }

    /**
     * From now on the linears of this micro-batch put their weight gradients off (zero-bubble pipelines split a
     * backward into its input-gradient half, which the stage before waits for, and its weight-gradient half, which
     * fills the bubble): each files the GEMM with copies of what it reads, and {@link #runDeferred} runs them.
     */
    public void deferWeightGradients() { if (deferred == null) deferred = new java.util.ArrayList<>(); }

    /** Whether weight gradients are being put off. */
    public boolean defersWeightGradients() { return deferred != null; }

    /** A weight gradient put off: it owns what it reads and frees it when it runs. */
    public void defer(Runnable weightGradient) { deferred.add(weightGradient); }

    /** Runs the weight gradients put off, in the order they were filed, and says how many; later ones are computed at once again. */
    public int runDeferred() {
        if (deferred == null) return 0;
        for (Runnable r : deferred) r.run();
        int n = deferred.size();
        deferred = null;
        return n;
    }

    /** Bytes of the distinct memory held here (records, arrays and lists are looked into; views count once): for memory accounting. */
    public long bytes() {
        Set<Object> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        long total = 0;
        for (Object o : kept.values()) total += bytes(o, seen);
        return total;
    }

    private static long bytes(Object o, Set<Object> seen) {
        if (o == null || !seen.add(o)) return 0;
        if (o instanceof Tensor t) return seen.add(t.storage()) ? t.numel() * t.dtype().byteSize() : 0; // a view's memory is its base's
        long total = 0;
        if (o instanceof Iterable<?> it) for (Object e : it) total += bytes(e, seen);
        else if (o instanceof Object[] a) for (Object e : a) total += bytes(e, seen);
        else if (o instanceof Record r)
            for (var c : r.getClass().getRecordComponents()) {
                try {
                    c.getAccessor().setAccessible(true);
                    total += bytes(c.getAccessor().invoke(r), seen);
                } catch (ReflectiveOperationException e) {
                    throw new IllegalStateException("cannot read " + c + " of " + r.getClass(), e);
                }
            }
        return total;
    }
}
