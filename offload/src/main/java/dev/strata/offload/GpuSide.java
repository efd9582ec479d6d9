package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The subgroups a split gives the GPU: each one's moments up into a {@link DeviceWindows window}, AdamW on the
 * device, and back to where they live, {@link DeviceWindows#COUNT} in flight at once; enqueued by the update, or
 * left to the next forward, which enqueues each one as a layer needs its parameters ({@link #defer}). A new split
 * makes a new one.
 */
final class GpuSide implements AutoCloseable {
    /** A GPU subgroup whose moments are on their way back from its window. */
    private record InFlight(Subgroup subgroup, Backend.Event landed) {}

    private final Backend backend;
    private final StateStore store;
    private final DeviceWindows windows;
    private final ArrayDeque<InFlight> inFlight = new ArrayDeque<>();
    private final List<Subgroup> subgroups;                         // the GPU's, in order
    private final Map<Parameter, Integer> placeOf = new HashMap<>(); // a parameter's subgroup's place in subgroups
    private final UpdateTimings timings;                            // counts the deferred ones enqueued
    private DeviceUpdate deferred;                                        // the update left to the next forward; null: none
    private int enqueued;                                           // of it, subgroups[0..enqueued) are enqueued

    GpuSide(Backend backend, DType stateType, List<Subgroup> all, StateStore store, UpdateTimings timings) {
        this.backend = backend;
        this.timings = timings;
        this.store = store;
        this.windows = new DeviceWindows(backend, stateType, all);
        this.subgroups = all.stream().filter(Subgroup::onGpu).toList();
        for (int j = 0; j < subgroups.size(); j++) for (Parameter p : subgroups.get(j).params()) placeOf.put(p, j);
    }

    /** The GPU's subgroups, in the model's order. */
    List<Subgroup> subgroups() { return subgroups; }

    /**
     * Enqueues subgroup k: its moments up into its window once the window's last copy back is done (its block b,
     * or null: the store reads and writes them straight, {@link StateStore#direct}), AdamW on the device with adam's
     * numbers and the step's schedule, its moments back down. The window's previous subgroup lands first.
     */
    void update(Subgroup k, StateBlock b, DeviceUpdate u) {
        if (inFlight.size() == DeviceWindows.COUNT) land(inFlight.poll()); // its window is k's next
        if (b == null) windows.readUp(k, store);
        else windows.bringUp(k, b);
        List<Backend.AdamWSlot> slots = new ArrayList<>();
        for (int i = 0; i < k.params().size(); i++) slots.add(u.slot(k.params().get(i), windows.m(k), windows.v(k), k.offsets()[i]));
        u.enqueue(backend, k.params(), slots);
        inFlight.add(new InFlight(k, b == null ? windows.writeBack(k, store) : windows.sendBack(k, b)));
    }

    /**
     * The step's update of every subgroup (their state in RAM) is u, enqueued as the next forward needs each one
     * ({@link #need}): so their moments come up while the forward computes, not before it starts. Their gradients
     * stay until then; each is zeroed once its update has read it. The first ones' moments come up now, where
     * backward did not bring them.
     */
    void defer(DeviceUpdate u) {
        deferred = u;
        enqueued = 0;
        windows.bringUpEarly(store);
    }

    /** Whether a deferred subgroup is not enqueued yet. */
    boolean pending() { return deferred != null && enqueued < subgroups.size(); }

    /** Whether p's gradient is still to be read by a deferred update (the training step must not zero it). */
    boolean readsLater(Parameter p) {
        Integer j = placeOf.get(p);
        return pending() && j != null && j >= enqueued;
    }

    /** The next forward reads params: the deferred subgroups holding them are enqueued, with every one before them. */
    void need(List<Parameter> params) {
        if (!pending()) return;
        int last = -1;
        for (Parameter p : params) {
            Integer j = placeOf.get(p);
            if (j != null) last = Math.max(last, j);
        }
        while (enqueued <= last) enqueueDeferred();
    }

    /** Every deferred subgroup enqueued and every block back to the store: the step's update is whole. */
    void finish() {
        while (pending()) enqueueDeferred();
        deferred = null;
        landAll();
    }

    /**
     * The next deferred subgroup: its update and its gradients zeroed; then the moments of the subgroup that takes the
     * window the one before it left come up. Not those for its own window: that copy would wait on the link up for
     * this update's copy back, holding up the CPU's weights the layers between need.
     */
    private void enqueueDeferred() {
        Subgroup k = subgroups.get(enqueued++);
        update(k, store.open(k), deferred);
        timings.gpuLate++;
        for (Parameter p : k.params()) p.zeroGrad();
        int next = enqueued - 2 + DeviceWindows.COUNT; // the previous one's window's next
        if (next < subgroups.size()) windows.bringUpAhead(subgroups.get(next), store.open(subgroups.get(next)));
    }

    /** The update's end: every block goes back to the store (their moments land before anything reads them). */
    void landAll() {
        while (!inFlight.isEmpty()) land(inFlight.poll());
    }

    /** A GPU subgroup's moments are back, or will be before anything reads them: its block goes back to the store (before its window's next subgroup). */
    private void land(InFlight f) {
        if (store.direct(f.subgroup())) return; // its write is queued: the window's next read waits for it
        if (store.writesBack(f.subgroup())) f.landed().await(); // its file is written from the block
        store.done(f.subgroup());
    }

    /** The windows' first subgroups' moments up while the step's last forward and backward run ({@link DeviceWindows#bringUpEarly}). */
    void bringUpEarly() { windows.bringUpEarly(store); }

    /** The host's moments were written (a checkpoint loaded): those brought up early are stale. */
    void forgetEarly() { windows.forgetEarly(); }

    /** Waits for every window's last copy back: the host's moments are whole. */
    void awaitLanded() { windows.awaitLanded(); }

    @Override public void close() { windows.close(); }
}
