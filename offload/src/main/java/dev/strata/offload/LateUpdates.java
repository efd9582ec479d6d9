package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Future;

/**
 * The CPU side's update after backward run on into the next forward (offload.update_during_forward): the CPU
 * updates its subgroups in the model's order on a thread of its own while the training thread enqueues the next
 * forward; before a layer runs, the training thread waits for the subgroups holding its parameters, sends up their
 * weights and every other one done by then, and makes the compute stream wait for them. So the first layers start
 * while the CPU still updates the last ones, and the link carries weights while the forward computes. The worker
 * only computes: every device call stays on the training thread.
 */
final class LateUpdates implements AutoCloseable {
    private final Backend backend;
    private final int stateBytes;
    private final List<Subgroup> onCpu;
    private final HostStaging staging;
    private final CpuWorker worker;
    private final int[] position;                          // c's place in this step's order; -1: not in it
    private final List<Integer> order = new ArrayList<>();  // this step's CPU subgroups, in the order the worker takes them
    private final List<Future<?>> updates = new ArrayList<>();
    private final List<Backend.Event> up = new ArrayList<>(); // the last copy up of each sent
    private int ready;                                      // order[0..ready) are on the device: the compute stream waited for them
    private long busyNanos, waitNanos;                      // the worker's time, the training thread's wait for it

    LateUpdates(Backend backend, CpuAdamW cpu, DType stateType, List<Subgroup> onCpu, HostStaging staging) {
        this.backend = backend;
        this.worker = new CpuWorker("strata-late-adamw", "the CPU's AdamW", cpu, stateType);
        this.stateBytes = stateType.byteSize();
        this.onCpu = onCpu;
        this.staging = staging;
        position = new int[onCpu.size()];
        Arrays.fill(position, -1);
    }

    /** Whether some subgroup's new weights are not on the device yet. */
    boolean pending() { return ready < order.size(); }

    /** Whether c was handed to the worker this step. */
    boolean holds(int c) { return position[c] >= 0; }

    /** The c-th CPU subgroup is updated next on the worker from these parts (its gradients have landed). */
    void submit(int c, List<CpuAdamW.Part> parts) {
        position[c] = order.size();
        order.add(c);
        updates.add(worker.update(parts, this::addBusy));
    }

    /** The next forward reads parameters of these CPU subgroups: their new weights first. */
    void need(List<Integer> subgroups) {
        int last = -1;
        for (int c : subgroups) if (position[c] >= ready) last = Math.max(last, position[c]);
        if (last >= 0) arrive(last);
    }

    /** Every subgroup's new weights on the device before the compute stream's next work; the step's order is over. */
    void finish() {
        if (pending()) arrive(order.size() - 1);
        up.forEach(Backend.Event::close);
        for (int c : order) position[c] = -1;
        order.clear();
        updates.clear();
        up.clear();
        ready = 0;
    }

    /**
     * order[0..j] on the device: sent up once updated (in order: the copy stream runs in order, so the compute stream
     * waits for j's last copy only), with whatever else the worker has finished; their bf16 copies made again after.
     */
    private void arrive(int j) {
        long t0 = System.nanoTime();
        while (up.size() <= j || up.size() < order.size() && updates.get(up.size()).isDone()) {
            worker.join(updates.get(up.size()));
            int c = order.get(up.size());
            up.add(HostStaging.sendUp(backend, onCpu.get(c), staging.weights(c), stateBytes));
        }
        waitNanos += System.nanoTime() - t0;
        backend.waitFor(up.get(j));
        for (; ready <= j; ready++) for (Parameter p : onCpu.get(order.get(ready)).params()) p.markUpdated(false);
    }

    private synchronized void addBusy(long nanos) { busyNanos += nanos; }

    /** The worker's time and the training thread's wait for it since the last call, in nanoseconds. */
    synchronized long[] takeNanos() {
        long[] t = {busyNanos, waitNanos};
        busyNanos = waitNanos = 0;
        return t;
    }

    @Override public void close() {
        worker.close();
        up.forEach(Backend.Event::close);
    }
}
