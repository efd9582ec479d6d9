package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

/**
 * The subgroups a split gives the GPU: each one's moments up into a {@link DeviceWindows window}, AdamW on the
 * device, and back to where they live, {@link DeviceWindows#COUNT} in flight at once. A new split makes a new one.
 */
final class GpuSide implements AutoCloseable {
    /** A GPU subgroup whose moments are on their way back from its window. */
    private record InFlight(Subgroup subgroup, Backend.Event landed) {}

    private final Backend backend;
    private final StateStore store;
    private final DeviceWindows windows;
    private final ArrayDeque<InFlight> inFlight = new ArrayDeque<>();

    GpuSide(Backend backend, DType stateType, List<Subgroup> all, StateStore store) {
        this.backend = backend;
        this.store = store;
        this.windows = new DeviceWindows(backend, stateType, all);
    }

    /**
     * Enqueues subgroup k: its moments up into its window once the window's last copy back is done (its block b,
     * or null: the store reads and writes them straight, {@link StateStore#direct}), AdamW on the device with adam's
     * numbers and the step's schedule, its moments back down. The window's previous subgroup lands first.
     */
    void update(Subgroup k, StateBlock b, AdamW.Settings adam, double maxGradNorm, Tensor schedule, Tensor gradSumSquares) {
        if (inFlight.size() == DeviceWindows.COUNT) land(inFlight.poll()); // its window is k's next
        if (b == null) windows.readUp(k, store);
        else windows.bringUp(k, b);
        List<Backend.AdamWSlot> slots = new ArrayList<>();
        for (int i = 0; i < k.params().size(); i++) {
            Parameter p = k.params().get(i);
            slots.add(new Backend.AdamWSlot(p.value(), p.grad(), windows.m(k), windows.v(k), k.offsets()[i], AdamW.weightDecay(adam, p), AdamW.bf16Copy(p)));
        }
        backend.adamw(slots, new Backend.AdamWSettings(adam.beta1(), adam.beta2(), adam.eps(), maxGradNorm), schedule, gradSumSquares);
        for (int i = 0; i < k.params().size(); i++) k.params().get(i).markUpdated(slots.get(i).copy() != null);
        inFlight.add(new InFlight(k, b == null ? windows.writeBack(k, store) : windows.sendBack(k, b)));
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
