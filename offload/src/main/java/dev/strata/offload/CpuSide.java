package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.Parameter;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * The subgroups a split gives the CPU (c counts them, in order): their weights and gradients in page-locked
 * {@link HostStaging}, their gradients sent down as the step's last backward finishes them (resident, one process),
 * their update run during that backward where RAM has room ({@link EarlyUpdates}), and their weights sent back up,
 * where the next forward announces its layers while the CPU still updates ({@link LateUpdates}). A new split makes a
 * new one.
 */
final class CpuSide implements AutoCloseable {
    private final Backend backend;
    private final CpuAdamW cpu;
    private final DType stateType;
    private final int stateBytes;
    private final List<Subgroup> subgroups;
    private final HostStaging staging;
    private final EarlyUpdates early;               // null: the CPU updates after backward
    private final LateUpdates late;                 // null: the next forward waits for every weight
    private final Map<Parameter, Integer> subgroupOf = new HashMap<>();
    private final List<List<Backend.Event>> gradsDown;  // c's gradients on their way down since backward finished them; null: not sent
    private final int[] pendingGrads;               // c's parameters whose gradients backward has still to finish this step
    private final boolean gradsDuringBackward;      // resident, and no sync changes gradients after backward: the last backward sends them
    private boolean lastMicroBatch;                 // this micro-batch's backward finishes the gradients
    private boolean weightsCurrent;                 // resident weights equal the device's (not before the first update, after a resume or a new split)

    /**
     * The CPU's subgroups of all, their state in store; early: updated during backward (needs gradsDuringBackward);
     * late: their update after backward may run on into the next forward (needs resident).
     */
    CpuSide(Backend backend, CpuAdamW cpu, DType stateType, List<Subgroup> all, StateStore store, boolean resident, boolean gradsDuringBackward, boolean early,
            boolean late) {
        this.backend = backend;
        this.cpu = cpu;
        this.stateType = stateType;
        this.stateBytes = stateType.byteSize();
        this.subgroups = of(all);
        this.gradsDuringBackward = gradsDuringBackward;
        this.staging = new HostStaging(backend, subgroups, stateBytes, resident);
        this.early = early && !subgroups.isEmpty() ? new EarlyUpdates(backend, cpu, stateType, subgroups, staging, store) : null;
        this.late = late && resident && !subgroups.isEmpty() ? new LateUpdates(backend, cpu, stateType, subgroups, staging) : null;
        this.gradsDown = new ArrayList<>(Collections.nCopies(subgroups.size(), null));
        this.pendingGrads = new int[subgroups.size()];
        for (int c = 0; c < subgroups.size(); c++) for (Parameter p : subgroups.get(c).params()) subgroupOf.put(p, c);
    }

    /** The CPU-updated subgroups of all, in order. */
    static List<Subgroup> of(List<Subgroup> all) { return all.stream().filter(k -> !k.onGpu()).toList(); }

    /** The page-locked memory the CPU side's staging takes at least: its window of subgroups' weights and gradients. */
    static long stagingBytes(List<Subgroup> subgroups, int stateBytes) {
        return HostStaging.windowBytes(of(subgroups).stream().mapToLong(Subgroup::elements).max().orElse(0) * stateBytes);
    }

    /** Waits for the copies and lets their events go (each holds a CUDA event). */
    static void awaitAll(List<Backend.Event> copies) {
        for (Backend.Event e : copies) {
            e.await();
            e.close();
        }
    }

    int size() { return subgroups.size(); }

    Subgroup get(int c) { return subgroups.get(c); }

    boolean resident() { return staging.resident(); }

    boolean updatesEarly() { return early != null; }

    /** Whether an update finds this step's gradients and current weights on the host already: nothing of it comes down then. */
    boolean onHost() { return staging.resident() && gradsDuringBackward && weightsCurrent; }

    /** The step's last backward streams resident subgroups' gradients down as it finishes them, and the CPU updates them early. */
    void startMicroBatch(boolean last, Function<Parameter, CpuAdamW.Step> unclipped) {
        lastMicroBatch = last && gradsDuringBackward;
        if (lastMicroBatch) for (int c = 0; c < subgroups.size(); c++) pendingGrads[c] = subgroups.get(c).params().size();
        if (lastMicroBatch && early != null && weightsCurrent) early.begin(unclipped);
    }

    void gradientsDone(List<Parameter> params) {
        if (!lastMicroBatch) return;
        for (Parameter p : params) {
            Integer c = subgroupOf.get(p);
            if (c == null || --pendingGrads[c] > 0) continue;
            List<Backend.Event> copies = gradsInto(c, null); // after the backward that finished them
            if (earlyActive()) {
                early.gradientsSent(c, copies);
                gradsDown.set(c, new ArrayList<>()); // early waits for them
            } else {
                gradsDown.set(c, copies);
            }
        }
    }

    /** Whether this step's subgroups are being updated during backward. */
    boolean earlyActive() { return early != null && early.active(); }

    /** The step's backward has been enqueued: what it finishes from now on is no step's last backward. */
    void backwardEnqueued() { lastMicroBatch = false; }

    /** Lets the early updates go on until e (backward's end); returns how long backward left them, in nanoseconds. */
    long updateUntil(Backend.Event e) {
        early.pollUntil(e);
        return early.windowNanos();
    }

    /** The elements the CPU can update during a step's backward, as the last step with early updates measured it. */
    double earlyCapacity() { return early == null ? 0 : early.capacity(); }

    /** The norm clipped nothing: the early updates done or running become the state (see {@link #kept}); returns the last copy up of their weights. */
    Backend.Event keep() { return early.keep(); }

    /** The norm clips: the early updates are thrown away (updated again, and sent up again, by {@link #update}); returns how many. */
    int drop() { return early.drop(new ArrayList<>()); }

    /** Whether c's early update became its state at the last {@link #keep}. */
    boolean kept(int c) { return early != null && early.kept(c); }

    /**
     * A skipped step: early updates are thrown away, and the device gets back the untouched weights of those that
     * were sent up; gradients sent down early are waited for (nothing reads them).
     */
    void skip() {
        if (earlyActive()) {
            Backend.Event last = Backend.DONE;
            List<Integer> sent = new ArrayList<>();
            early.drop(sent);
            for (int c : sent) {
                last.close();
                last = HostStaging.sendUp(backend, subgroups.get(c), staging.weights(c), stateBytes);
            }
            backend.waitFor(last);
            last.close();
        }
        for (int c = 0; c < gradsDown.size(); c++) if (gradsDown.get(c) != null) awaitAll(gradsDown.set(c, null));
    }

    /**
     * c's weights and gradients down into staging, once after (what last read that block) is done; resident
     * weights only while they are not current, gradients only if backward did not send them already.
     */
    List<Backend.Event> sendDown(int c, Backend.Event after) {
        Subgroup k = subgroups.get(c);
        List<Backend.Event> copies = gradsDown.get(c) == null ? gradsInto(c, after) : gradsDown.set(c, null);
        if (!staging.resident() || !weightsCurrent)
            for (int i = 0; i < k.params().size(); i++) copies.add(backend.copyToHostAfter(k.params().get(i).value(), k.part(staging.weights(c), i, stateBytes), after));
        return copies;
    }

    /** c's gradients down into staging, once after is done (null: once the compute stream's work so far is). */
    private List<Backend.Event> gradsInto(int c, Backend.Event after) {
        Subgroup k = subgroups.get(c);
        List<Backend.Event> copies = new ArrayList<>();
        for (int i = 0; i < k.params().size(); i++) {
            Tensor grad = k.params().get(i).grad();
            Backend.HostBuffer into = k.part(staging.grads(c), i, stateBytes);
            copies.add(after == null ? backend.copyToHost(grad, into) : backend.copyToHostAfter(grad, into, after));
        }
        return copies;
    }

    /** Updates c in staging and its moments in b by step's numbers; returns the last of its weights' copies up. */
    Backend.Event update(int c, StateBlock b, Function<Parameter, CpuAdamW.Step> step, UpdateTimings timings) {
        long t0 = System.nanoTime();
        cpu.update(stateType, staging.parts(subgroups.get(c), c, b, staging.weights(c), b, step));
        long t1 = System.nanoTime();
        timings.cpuNanos += t1 - t0;
        Backend.Event last = HostStaging.sendUp(backend, subgroups.get(c), staging.weights(c), stateBytes); // the device reads these weights after the update's end
        timings.upNanos += System.nanoTime() - t1;
        return last;
    }

    /** Whether c's update may run on into the next forward ({@link #updateLate}). */
    boolean updatesLate() { return late != null; }

    /** Updates c in staging and its moments in b by step's numbers while the next forward starts; its weights go up when a layer needs them. */
    void updateLate(int c, StateBlock b, Function<Parameter, CpuAdamW.Step> step) {
        late.submit(c, staging.parts(subgroups.get(c), c, b, staging.weights(c), b, step));
    }

    /** Whether a weight updated late is not on the device yet. */
    boolean latePending() { return late != null && late.pending(); }

    /** The next forward reads params: the compute stream waits for the new weights of the subgroups holding them. */
    void parametersNeeded(List<Parameter> params) {
        if (!latePending()) return;
        List<Integer> cs = new ArrayList<>();
        for (Parameter p : params) {
            Integer c = subgroupOf.get(p);
            if (c != null) cs.add(c);
        }
        late.need(cs);
    }

    /** Every weight updated late is on the device before the compute stream's next work. */
    void finishLate() {
        if (late != null) late.finish();
    }

    /** The late updates' CPU time and the forward's wait for them since the last call, in nanoseconds ({0, 0} without them). */
    long[] lateNanos() { return late == null ? new long[2] : late.takeNanos(); }

    /**
     * The device has the new weights of those not updated late (the compute stream waits for them): their bf16
     * copies are made again; the host's weights are current, or will be before anything reads them.
     */
    void updated() {
        for (int c = 0; c < subgroups.size(); c++)
            if (late == null || !late.holds(c)) for (Parameter p : subgroups.get(c).params()) p.markUpdated(false);
        weightsCurrent = true;
    }

    /** The device's weights were written from elsewhere (a checkpoint): the host's are sent down again at the next update. */
    void weightsChanged() { weightsCurrent = false; }

    @Override public void close() {
        if (late != null) late.close();
        if (early != null) early.close();
        staging.close();
    }
}
