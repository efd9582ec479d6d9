package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Function;

/**
 * The CPU side's update run during the step's last backward (offload.update_during_backward): a resident CPU
 * subgroup is updated as soon as its gradients have landed, as if the global norm clipped nothing, into spare
 * buffers beside its weights and moments, and those weights go up while backward runs on. The norm, known once
 * backward ends, decides: a clip scale of exactly 1 gives the very numbers of the update after backward, so the
 * spares become the state (buffers traded, nothing copied); any other scale, or a step skipped, throws them away
 * and the subgroup is updated again from its untouched state. Without clipping, or once training settles under the
 * limit, part of the CPU's work moves off the critical path. Written beside the state rather than over it, an early
 * update moves 40 bytes an element instead of 28 (the spares' cache lines are read before they are written), so
 * only what backward leaves time for is done early: once the norm is known, updates not yet started are let go and
 * run in place after backward as usual. Costs three state values an element of pinned RAM. The worker thread only
 * computes: every device call (copies, event queries) stays on the training thread.
 */
final class EarlyUpdates implements AutoCloseable {
    private final Backend backend;
    private final int stateBytes;
    private final List<Subgroup> onCpu;
    private final HostStaging staging;
    private final StateStore store;
    private final Backend.HostBuffer[] weights;   // c's weights as the early update left them, until kept
    private final StateBlock[] moments;           // c's moments likewise
    private final List<List<Backend.Event>> landing = new ArrayList<>(); // c's gradients on their way down; null: landed, or not sent
    private final List<Future<?>> updates = new ArrayList<>();          // c's early update; null: not started this step
    private final Backend.Event[] up;              // the copy up of c's early weights; null: not sent
    private Backend.Event newest;                 // of those, the one enqueued last (the copy stream runs in order)
    private final boolean[] kept;                 // c's early update became its state this step
    private final CpuWorker worker;
    private Function<Parameter, CpuAdamW.Step> unclipped;
    private boolean active;
    private long firstStart, window; // when this step's first early update started; the time from it to the end of backward
    private final AtomicLong busyNanos = new AtomicLong(), doneElements = new AtomicLong(); // the worker's time and elements this step
    private double rate;             // elements a second the worker updated early, the last step it did any

    EarlyUpdates(Backend backend, CpuAdamW cpu, DType stateType, List<Subgroup> onCpu, HostStaging staging, StateStore store) {
        this.backend = backend;
        this.worker = new CpuWorker("strata-early-adamw", "the CPU's early AdamW", cpu, stateType);
        this.stateBytes = stateType.byteSize();
        this.onCpu = onCpu;
        this.staging = staging;
        this.store = store;
        weights = new Backend.HostBuffer[onCpu.size()];
        moments = new StateBlock[onCpu.size()];
        up = new Backend.Event[onCpu.size()];
        kept = new boolean[onCpu.size()];
        for (int c = 0; c < onCpu.size(); c++) {
            weights[c] = backend.hostBuffer(onCpu.get(c).elements() * stateBytes);
            moments[c] = new StateBlock(backend, onCpu.get(c).elements() * stateBytes);
            landing.add(null);
            updates.add(null);
        }
    }

    /** The pinned memory the spares of these CPU subgroups take: a weight and two moments an element. */
    static long bytes(List<Subgroup> onCpu, int stateBytes) {
        return onCpu.stream().mapToLong(k -> k.elements() * stateBytes + StateBlock.bytes(k.elements(), stateBytes)).sum();
    }

    /** The step's last backward begins: its subgroups are updated early with these numbers (a clip scale of 1). */
    void begin(Function<Parameter, CpuAdamW.Step> unclipped) {
        this.unclipped = unclipped;
        active = true;
        firstStart = 0;
    }

    /** Whether this step's subgroups are being updated early. */
    boolean active() { return active; }

    /** The c-th CPU subgroup's gradients are on their way down (these copies): its update starts once they land. */
    void gradientsSent(int c, List<Backend.Event> copies) {
        landing.set(c, copies);
        poll();
    }

    /** Starts what has landed and sends up what is done, until e (the end of backward) is reached. */
    void pollUntil(Backend.Event e) {
        while (!e.done()) {
            poll();
            LockSupport.parkNanos(20_000);
        }
        e.close();
        window = firstStart == 0 ? 0 : System.nanoTime() - firstStart;
    }

    /** How long the last step's backward left the CPU to update early: from its first subgroup's start to backward's end. */
    long windowNanos() { return window; }

    /** The elements the CPU can update early in a step: the last window at the rate its early updates ran (0 before any ran). */
    double capacity() { return window / 1e9 * rate; }

    private void poll() {
        for (int c = 0; c < onCpu.size(); c++) {
            List<Backend.Event> copies = landing.get(c);
            if (copies != null && copies.stream().allMatch(Backend.Event::done)) start(c);
            Future<?> update = updates.get(c);
            if (update != null && update.isDone() && up[c] == null && !update.isCancelled()) sendUp(c);
        }
    }

    private void sendUp(int c) { newest = up[c] = HostStaging.sendUp(backend, onCpu.get(c), weights[c], stateBytes); }

    private void start(int c) {
        CpuSide.awaitAll(landing.set(c, null));
        if (firstStart == 0) firstStart = System.nanoTime();
        var parts = staging.parts(onCpu.get(c), c, store.open(onCpu.get(c)), weights[c], moments[c], unclipped);
        long elements = onCpu.get(c).elements();
        updates.set(c, worker.update(parts, nanos -> {
            busyNanos.addAndGet(nanos);
            doneElements.addAndGet(elements);
        }));
    }

    /**
     * The norm clipped nothing: the early updates done or running become their subgroups' state, their weights sent
     * up; those not started are let go (the caller updates them in place; their gradients have landed). Returns the
     * copy up enqueued last, which the caller waits for and closes: the copy stream runs in order.
     */
    Backend.Event keep() {
        Arrays.fill(kept, false);
        for (int c = 0; c < onCpu.size(); c++) {
            Future<?> update = landed(c);
            if (update == null || update.cancel(false)) continue;
            worker.join(update);
            if (up[c] == null) sendUp(c);
            weights[c] = staging.swapWeights(c, weights[c]);
            store.open(onCpu.get(c)).swap(moments[c]);
            kept[c] = true;
        }
        Backend.Event last = newest == null ? Backend.DONE : newest;
        letGoOfCopiesUp(last);
        measureRate();
        return last;
    }

    /** Once the norm is known: waits for c's gradients (nothing reads them early any more) and takes c's early update, null if none. */
    private Future<?> landed(int c) {
        List<Backend.Event> copies = landing.set(c, null);
        if (copies != null) CpuSide.awaitAll(copies);
        return updates.set(c, null);
    }

    /** Closes the copies up but keep, returning the subgroups they were for. */
    private List<Integer> letGoOfCopiesUp(Backend.Event keep) {
        List<Integer> sent = new ArrayList<>();
        for (int c = 0; c < onCpu.size(); c++)
            if (up[c] != null) {
                sent.add(c);
                if (up[c] != keep) up[c].close();
                up[c] = null;
            }
        newest = null;
        return sent;
    }

    /**
     * The norm clips (or the step is skipped): the early updates are thrown away, the state stays as it was; the
     * gradients sent have landed. Adds to sent the CPU subgroups whose early weights went up to the device; returns
     * how many early updates were thrown away (done, running or waiting).
     */
    int drop(List<Integer> sent) {
        int dropped = 0;
        for (int c = 0; c < onCpu.size(); c++) {
            Future<?> update = landed(c);
            if (update == null) continue;
            dropped++;
            if (!update.cancel(false)) worker.join(update);
        }
        measureRate();
        sent.addAll(letGoOfCopiesUp(null));
        return dropped;
    }

    /** The step's early updates are over (all joined or let go): their rate, where they did any. */
    private void measureRate() {
        long busy = busyNanos.getAndSet(0), done = doneElements.getAndSet(0);
        if (busy > 0) rate = done / (busy / 1e9);
        active = false;
    }

    /** Whether c's early update became its state at the last {@link #keep}. */
    boolean kept(int c) { return kept[c]; }

    @Override public void close() {
        worker.close();
        for (int c = 0; c < onCpu.size(); c++) {
            weights[c].close();
            moments[c].close();
        }
    }
}
