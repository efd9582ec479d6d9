package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.nn.Optimizer;
import dev.strata.runtime.nn.Parameter;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * AdamW with its state off the device (offload.optimizer = cpu | nvme), updated by the CPU and the GPU at once (Deep
 * Optimizer States): the parameters are cut into subgroups; a GPU subgroup's moments are streamed up, updated there
 * and streamed back, while the CPU updates the other subgroups, whose gradients come down and whose weights go back
 * up before the next forward. The device's f32 values are the master weights, so the host needs only the moments
 * (8 bytes a parameter, not 16): what lets a 13B model's state fit in RAM. Where RAM has room beyond them, the CPU
 * side's weights and gradients stay there too ({@link HostStaging}): its weights then cross the link only up, and
 * its gradients come down during the step's last backward. The GPU's share is offload.gpu_fraction, or the
 * {@link SplitModel}'s measured best. The numbers are {@link AdamW}'s; in f64 on the CPU backend an update equals
 * AdamW's bit for bit on every split and tier. offload.gpu_state_gb keeps the first parameters' state on the device
 * ({@link DeviceState}): only the rest is offloaded and split.
 */
public final class OffloadedAdamW implements Optimizer {
    /**
     * tier: cpu or nvme (nvmeDir, staging within pinMemoryGb unless 0); gpuFraction NaN: measured; threads: the CPU
     * update's; subgroupElements: their size; gpuStateGb: the state the GPU tier keeps on the device;
     * updateDuringBackward: the CPU side updated as its gradients land ({@link EarlyUpdates}), where RAM has room.
     */
    public record Settings(AdamW.Settings adam, String tier, Path nvmeDir, double gpuFraction, int threads, long subgroupElements, double pinMemoryGb,
                           double gpuStateGb, boolean updateDuringBackward) {}

    /** CPU subgroups whose copies down run ahead of the CPU. */
    private static final int HOST_WINDOW = HostStaging.WINDOW;

    /** A GPU subgroup whose moments are on their way back from its window. */
    private record InFlight(Subgroup subgroup, Backend.Event landed) {}


    private final UpdateTimings timings = new UpdateTimings();
    private final Backend backend;
    private final AdamW.Settings adam;
    private final GradientSync sync;
    private final DType stateType;
    private final int stateBytes;
    private final List<Subgroup> subgroups = new ArrayList<>();
    private final List<Subgroup> onCpu;      // the CPU-updated ones, in order
    private final List<Tensor> normGrads = new ArrayList<>();
    private final StateStore store;
    private final HostStaging staging;
    private final CpuAdamW cpu;
    private final Tensor schedule, gradSumSquares;
    private final DeviceWindows windows;
    private final DeviceState onDevice;     // the GPU tier: moments that never leave the device
    private final EarlyUpdates early;       // the CPU side updated during backward; null: after it
    private final Map<Parameter, Integer> cpuSubgroupOf = new java.util.HashMap<>(); // a CPU-updated parameter's subgroup, as c counts them
    private final List<List<Backend.Event>> gradsDown;  // the c-th CPU subgroup's gradients on their way down since backward finished them; null: not sent
    private final int[] pendingGrads;               // its parameters whose gradients backward has still to finish this step
    private final boolean gradsDuringBackward;      // resident, and no sync changes gradients after backward: the last backward sends them
    private boolean lastMicroBatch;                 // this micro-batch's backward finishes the gradients
    private boolean hostWeightsCurrent;             // resident weights equal the device's (false before the first update and after a resume)
    private double lr, bc1, bc2Sqrt, lastNorm = Double.NaN;
    private long step;
    private final MomentViews views;

    public OffloadedAdamW(Map<String, Parameter> params, Settings settings, GradientSync sync, PrintStream out) {
        this.adam = settings.adam();
        this.sync = sync;
        List<Parameter> mine = updated(params, sync);
        if (params.values().stream().noneMatch(Parameter::trainable)) throw new IllegalArgumentException("AdamW has no trainable parameter to update");
        this.backend = params.values().iterator().next().value().backend();
        this.stateType = mine.isEmpty() ? DType.F32 : AdamW.stateType(mine.get(0));
        for (Parameter p : mine)
            if (p.value().dtype() != (stateType == DType.F64 ? DType.F64 : DType.F32))
                throw new IllegalArgumentException("offload keeps f32 (or f64) master weights; " + p.name() + " is " + p.value().dtype());
        this.stateBytes = stateType.byteSize();
        for (Parameter p : mine) if (sync.countsInNorm(p)) normGrads.add(p.grad()); // this rank's share; the sync adds the others'
        this.cpu = new CpuAdamW(settings.threads());
        long total = mine.stream().mapToLong(p -> p.value().numel()).sum();
        List<Parameter> kept = DeviceState.fitting(mine, (long) (settings.gpuStateGb() * 1e9), stateType);
        this.onDevice = new DeviceState(backend, kept, stateType);
        List<Parameter> rest = mine.subList(kept.size(), mine.size());
        long offloaded = total - onDevice.elements();
        SplitModel model = Double.isNaN(settings.gpuFraction()) && offloaded > 0 ? SplitModel.measure(backend, cpu, stateType) : null;
        // the CPU side's weights and gradients stay in pinned RAM where it has room: then its weights stay on the host
        // and, without a sync that changes gradients after backward, its gradients come down during backward
        boolean resident = true, unsynced = sync == GradientSync.NONE;
        int cpuDown = unsynced ? 0 : 1;
        double fraction = model != null ? model.bestFraction(offloaded, onDevice.elements(), cpuDown) : settings.gpuFraction();
        List<Subgroup> split = split(rest, settings.subgroupElements(), fraction);
        long residentBytes = HostStaging.residentBytes(cpuSide(split), stateBytes), spare = StateStore.spareRam(split, stateBytes, settings);
        if (residentBytes > spare) {
            resident = false;
            cpuDown = 2;
            if (model != null) split = split(rest, settings.subgroupElements(), fraction = model.bestFraction(offloaded, onDevice.elements(), cpuDown));
        }
        gradsDuringBackward = resident && unsynced;
        subgroups.addAll(split);
        if (model != null) out.println("offload split: " + model.explain(offloaded, onDevice.elements(), fraction, cpuDown));
        this.store = StateStore.open(backend, subgroups, stateBytes, settings, resident ? residentBytes : 0);
        onCpu = cpuSide(subgroups);
        this.staging = new HostStaging(backend, onCpu, stateBytes, resident);
        long earlyBytes = EarlyUpdates.bytes(onCpu, stateBytes);
        String afterBackward = onCpu.isEmpty() ? null : !settings.updateDuringBackward() ? "offload.update_during_backward = false"
                : !gradsDuringBackward ? (resident ? "a sync changes the gradients after backward" : "its weights are not kept in RAM")
                : !settings.tier().equals("cpu") ? "the nvme tier reads the moments in turn"
                : residentBytes + earlyBytes > spare ? String.format(java.util.Locale.ROOT, "no room for its %.1f GB of spare pinned buffers", earlyBytes / 1e9) : null;
        this.early = onCpu.isEmpty() || afterBackward != null ? null : new EarlyUpdates(backend, cpu, stateType, onCpu, staging, store);
        this.gradsDown = new ArrayList<>(java.util.Collections.nCopies(onCpu.size(), null));
        this.pendingGrads = new int[onCpu.size()];
        for (int c = 0; c < onCpu.size(); c++) for (Parameter p : onCpu.get(c).params()) cpuSubgroupOf.put(p, c);
        schedule = backend.zeros(DType.F64, 3);
        gradSumSquares = backend.zeros(DType.F64, 1);
        windows = new DeviceWindows(backend, stateType, subgroups);
        views = new MomentViews(store, subgroups, stateType);
        long onGpu = subgroups.stream().filter(Subgroup::onGpu).mapToLong(Subgroup::elements).sum();
        if (!onDevice.isEmpty())
            out.printf(java.util.Locale.ROOT, "offload: AdamW state of %,d parameters kept on the GPU (%.1f GB; offload.gpu_state_gb allows %s)%n", onDevice.elements(),
                    onDevice.bytes() / 1e9, new java.math.BigDecimal(settings.gpuStateGb()).round(new java.math.MathContext(3)).stripTrailingZeros().toPlainString());
        if (offloaded > 0) out.printf(java.util.Locale.ROOT, "offload: AdamW state of %,d parameters in %s, %d subgroups, %d updated by the GPU (%.0f%%), the rest by %d CPU threads; "
                        + "their weights and gradients %s%n",
                offloaded, store.describe(), subgroups.size(), subgroups.stream().filter(Subgroup::onGpu).count(), 100.0 * onGpu / offloaded, cpu.threads(),
                resident ? String.format(java.util.Locale.ROOT, "kept in pinned RAM (%.1f GB)", residentBytes / 1e9)
                        : "streamed through " + HostStaging.WINDOW + " staging blocks (RAM has no room to keep them)");
        if (early != null) out.printf(java.util.Locale.ROOT, "offload: the CPU updates each of its subgroups as soon as the last backward has sent its gradients, "
                + "kept when the global norm clips nothing (%.1f GB of spare pinned buffers)%n", earlyBytes / 1e9);
        else if (afterBackward != null) out.println("offload: the CPU updates its subgroups after backward (" + afterBackward + ")");
    }

    /** The parameters this rank's AdamW updates: the trainable ones the sync gives it. */
    private static List<Parameter> updated(Map<String, Parameter> params, GradientSync sync) {
        return params.values().stream().filter(p -> p.trainable() && sync.updates(p)).toList();
    }

    /**
     * Whether gpuStateGb of the GPU tier holds all of the state: then nothing would be offloaded, and AdamW on the
     * device does the same update (and can be captured in a graph).
     */
    public static boolean fitsOnDevice(Map<String, Parameter> params, GradientSync sync, double gpuStateGb) {
        List<Parameter> mine = updated(params, sync);
        return !mine.isEmpty() && DeviceState.fitting(mine, (long) (gpuStateGb * 1e9), AdamW.stateType(mine.get(0))).size() == mine.size();
    }

    /**
     * The parameters in subgroups, a share fraction of them updated by the GPU: spread through the order, so the
     * device always has some while the CPU works on others.
     */
    private static List<Subgroup> split(List<Parameter> params, long subgroupElements, double fraction) {
        List<Subgroup> out = new ArrayList<>();
        double credit = 0;
        for (List<Parameter> group : Subgroup.partition(params, subgroupElements)) {
            long n = group.stream().mapToLong(p -> p.value().numel()).sum();
            credit += fraction * n;
            boolean onGpu = credit >= n / 2.0 && fraction > 0;
            if (onGpu) credit -= n;
            out.add(Subgroup.of(out.size(), group, onGpu));
        }
        return out;
    }

    private static List<Subgroup> cpuSide(List<Subgroup> subgroups) { return subgroups.stream().filter(k -> !k.onGpu()).toList(); }

    /** The page-locked memory the CPU side's staging takes at least: its window of subgroups' weights and gradients. */
    static long stagingBytes(List<Subgroup> subgroups, int stateBytes) {
        return HostStaging.windowBytes(cpuSide(subgroups).stream().mapToLong(Subgroup::elements).max().orElse(0) * stateBytes);
    }

    /** Waits for the copies and lets their events go (each holds a CUDA event). */
    static void awaitAll(List<Backend.Event> copies) {
        for (Backend.Event e : copies) {
            e.await();
            e.close();
        }
    }

    @Override public void prepareStep(double lr) {
        step++;
        this.lr = lr;
        bc1 = 1 - Math.pow(adam.beta1(), step);
        bc2Sqrt = Math.sqrt(1 - Math.pow(adam.beta2(), step));
        try (Tensor s = backend.fromDoubles(new double[] {lr, bc1, bc2Sqrt}, DType.F64, 3)) {
            backend.copyInto(s, schedule);
        }
    }

    @Override public boolean capturable() { return false; }

    /**
     * The global norm (the host waits for backward here, so the device is idle and copies need not wait for it),
     * then every subgroup in order: a GPU one enqueued whole (moments up into a {@link DeviceWindows window}, AdamW on
     * the device, moments down), a CPU one updated here from its weights and gradients (what is not on the host yet
     * streamed down {@link #HOST_WINDOW} subgroups ahead), and its weights sent back up. The host waits only for the
     * CPU side's copies down; the compute stream waits once, at the end, for the CPU side's weights, while the GPU
     * subgroups' moments go on down beside the next forward. Nothing is updated when the norm is not finite.
     */
    @Override public void enqueueUpdate(double maxGradNorm) {
        lastMicroBatch = false;
        long t0 = System.nanoTime();
        backend.sumOfSquares(normGrads, gradSumSquares);
        if (early != null && early.active()) {
            early.pollUntil(backend.record()); // the CPU goes on with what backward has finished
            timings.earlyWindowNanos += early.windowNanos();
        }
        sync.reduceNormSquares(gradSumSquares);
        lastNorm = Math.sqrt(backend.toDoubles(gradSumSquares)[0]);
        timings.normNanos += System.nanoTime() - t0;
        if (Double.isFinite(lastNorm)) {
            update(maxGradNorm);
        } else {
            if (early != null && early.active()) restoreWeights(early.drop());
            dropGradsDown();
        }
        timings.totalNanos += System.nanoTime() - t0;
        timings.steps++;
    }

    /** Where the update's host time went since the last call, a step on average (and starts counting again). */
    public String timings() { return timings.report(); }

    private void update(double maxGradNorm) {
        onDevice.enqueueUpdate(adam, maxGradNorm, schedule, gradSumSquares); // first: the device works on it while the first copies come
        double gradScale = CpuAdamW.clipScale(stateType, maxGradNorm, lastNorm);
        Backend.Event lastUp = Backend.DONE; // the copy stream runs in order: the compute stream waits for the last copy up
        if (early != null && early.active()) {
            long t0 = System.nanoTime();
            if (gradScale == 1.0) lastUp = early.keep();
            else timings.earlyDropped += early.drop().size(); // updated again below from the untouched state, and sent up again
            timings.cpuNanos += System.nanoTime() - t0;
        }
        List<List<Backend.Event>> down = new ArrayList<>();
        List<Backend.Event> up = new ArrayList<>();    // each CPU subgroup's last copy up (one stream: in order)
        for (int c = 0; c < Math.min(HOST_WINDOW, onCpu.size()); c++) down.add(sendDown(onCpu.get(c), c, Backend.DONE));
        ArrayDeque<InFlight> inFlight = new ArrayDeque<>();
        int c = 0;
        for (int j = 0; j < subgroups.size(); j++) {
            Subgroup k = subgroups.get(j);
            if (k.onGpu()) {
                long t1 = System.nanoTime();
                if (inFlight.size() == DeviceWindows.COUNT) land(inFlight.poll()); // its window is k's next
                inFlight.add(onDevice(k, open(k, j), maxGradNorm));
                timings.deviceNanos += System.nanoTime() - t1;
            } else {
                StateBlock b = open(k, j);
                long t1 = System.nanoTime();
                awaitAll(down.get(c));
                timings.copyWaitNanos += System.nanoTime() - t1;
                if (early != null && early.kept(c)) {
                    timings.earlyKept++;
                    up.add(Backend.DONE);
                } else {
                    up.add(lastUp = onHost(k, c, b, gradScale));
                }
                store.done(k);
                if (c + HOST_WINDOW < onCpu.size()) // a window block is free once the copy up that read it is done
                    down.add(sendDown(onCpu.get(c + HOST_WINDOW), c + HOST_WINDOW, staging.resident() ? Backend.DONE : up.get(c)));
                c++;
            }
        }
        long t1 = System.nanoTime();
        // the next forward waits for the CPU side's weights; the GPU subgroups' moments go on down beside it
        backend.waitFor(lastUp);
        for (Subgroup k : onCpu) for (Parameter p : k.params()) p.markUpdated(false); // after the wait: the bf16 copies read the new weights
        up.forEach(Backend.Event::close);
        lastUp.close();
        hostWeightsCurrent = true;
        inFlight.forEach(this::land);
        store.readAhead(subgroups); // the next update's first state from disk, during forward and backward
        timings.endNanos += System.nanoTime() - t1;
    }

    /** The j-th subgroup's block from the store, the next one read ahead. */
    private StateBlock open(Subgroup k, int j) {
        long t0 = System.nanoTime();
        StateBlock b = store.open(k);
        if (j + 1 < subgroups.size()) store.prefetch(subgroups.get(j + 1));
        timings.storeNanos += System.nanoTime() - t0;
        return b;
    }

    /**
     * The c-th CPU subgroup's weights and gradients down into staging, once after (what last read that block) is
     * done; resident weights only while they are not current, gradients only if backward did not send them already.
     */
    private List<Backend.Event> sendDown(Subgroup k, int c, Backend.Event after) {
        List<Backend.Event> copies = gradsDown.get(c) == null ? gradsInto(k, c, after) : gradsDown.set(c, null);
        if (!staging.resident() || !hostWeightsCurrent)
            for (int i = 0; i < k.params().size(); i++) copies.add(backend.copyToHostAfter(k.params().get(i).value(), k.part(staging.weights(c), i, stateBytes), after));
        return copies;
    }

    /** The c-th CPU subgroup's gradients down into staging, once after is done (null: once the compute stream's work so far is). */
    private List<Backend.Event> gradsInto(Subgroup k, int c, Backend.Event after) {
        List<Backend.Event> copies = new ArrayList<>();
        for (int i = 0; i < k.params().size(); i++) {
            Tensor grad = k.params().get(i).grad();
            Backend.HostBuffer into = k.part(staging.grads(c), i, stateBytes);
            copies.add(after == null ? backend.copyToHost(grad, into) : backend.copyToHostAfter(grad, into, after));
        }
        return copies;
    }

    /** Gradients of a skipped step that were sent down early: nothing reads them. */
    private void dropGradsDown() {
        for (int c = 0; c < gradsDown.size(); c++) if (gradsDown.get(c) != null) awaitAll(gradsDown.set(c, null));
    }

    /**
     * The step's last backward streams resident CPU subgroups' gradients down as it finishes them, overlapped with
     * the rest of it; only on one process without a sync, whose reduction would change them after backward.
     */
    @Override public void startMicroBatch(boolean last) {
        lastMicroBatch = last && gradsDuringBackward;
        if (lastMicroBatch) for (int c = 0; c < onCpu.size(); c++) pendingGrads[c] = onCpu.get(c).params().size();
        if (lastMicroBatch && early != null && hostWeightsCurrent) early.begin(p -> step(p, 1.0));
    }

    @Override public void gradientsDone(List<Parameter> params) {
        if (!lastMicroBatch) return;
        for (Parameter p : params) {
            Integer c = cpuSubgroupOf.get(p);
            if (c == null || --pendingGrads[c] > 0) continue;
            List<Backend.Event> copies = gradsInto(onCpu.get(c), c, null); // after the backward that finished them
            if (early != null && early.active()) {
                early.gradientsSent(c, copies);
                gradsDown.set(c, new ArrayList<>()); // early waits for them
            } else {
                gradsDown.set(c, copies);
            }
        }
    }

    /** A skipped step's early updates had sent their weights up: the device gets the untouched ones back before the next forward. */
    private void restoreWeights(List<Integer> sent) {
        Backend.Event last = Backend.DONE;
        for (int c : sent) {
            last.close();
            last = HostStaging.sendUp(backend, onCpu.get(c), staging.weights(c), stateBytes);
        }
        backend.waitFor(last);
        last.close();
    }

    /**
     * Enqueues a GPU subgroup: its moments up into its window once the window's last copy back is done, AdamW on
     * the device, its moments back down; returns when they will have landed.
     */
    private InFlight onDevice(Subgroup k, StateBlock b, double maxGradNorm) {
        windows.bringUp(k, b);
        List<Backend.AdamWSlot> slots = new ArrayList<>();
        for (int i = 0; i < k.params().size(); i++) {
            Parameter p = k.params().get(i);
            slots.add(new Backend.AdamWSlot(p.value(), p.grad(), windows.m(k), windows.v(k), k.offsets()[i], AdamW.weightDecay(adam, p), AdamW.bf16Copy(p)));
        }
        backend.adamw(slots, new Backend.AdamWSettings(adam.beta1(), adam.beta2(), adam.eps(), maxGradNorm), schedule, gradSumSquares);
        for (int i = 0; i < k.params().size(); i++) k.params().get(i).markUpdated(slots.get(i).copy() != null);
        return new InFlight(k, windows.sendBack(k, b));
    }

    /** A GPU subgroup's moments are back, or will be before anything reads them: its block goes back to the store (before its window's next subgroup). */
    private void land(InFlight f) {
        if (store.writesBack(f.subgroup())) f.landed().await(); // its file is written from the block
        store.done(f.subgroup());
    }

    /** Updates the c-th CPU subgroup in staging and its moments in b; returns the last of its weights' copies up. */
    private Backend.Event onHost(Subgroup k, int c, StateBlock b, double gradScale) {
        long t0 = System.nanoTime();
        cpu.update(stateType, staging.parts(k, c, b, staging.weights(c), b, p -> step(p, gradScale)));
        long t1 = System.nanoTime();
        timings.cpuNanos += t1 - t0;
        Backend.Event last = HostStaging.sendUp(backend, k, staging.weights(c), stateBytes); // the device reads these weights after the update's end
        timings.upNanos += System.nanoTime() - t1;
        return last;
    }

    /** This step's numbers for p's update on the CPU, its gradient multiplied by gradScale. */
    private CpuAdamW.Step step(Parameter p, double gradScale) {
        return new CpuAdamW.Step(adam.beta1(), adam.beta2(), adam.eps(), lr, bc1, bc2Sqrt, AdamW.weightDecay(adam, p), gradScale);
    }

    @Override public double lastGradNorm() { return lastNorm; }

    @Override public void stepSkipped() { step--; }

    @Override public long stepCount() { return step; }

    /**
     * A checkpoint's moments were loaded into the views {@link #hostState} gave: those in RAM are in place, those
     * of state on disk are written back to its files now.
     */
    @Override public void restore(long stepCount) {
        this.step = stepCount;
        hostWeightsCurrent = false; // the device's weights were loaded too
        views.writeBack();
    }

    @Override public boolean stateOnHost() { return true; }

    /** The offloaded moments by checkpoint name where they live ({@link MomentViews}), once the last update's copies have landed. */
    @Override public Map<String, HostTensor> hostState() {
        backend.synchronize();
        windows.awaitLanded();
        return views.read();
    }

    /** The GPU tier's moments; the offloaded ones are read where they live ({@link #hostState}). */
    @Override public Map<String, Tensor> state() { return onDevice.state(); }

    @Override public void close() {
        if (early != null) early.close();
        onDevice.close();
        windows.close();
        store.close();
        staging.close();
        cpu.close();
        schedule.close();
        gradSumSquares.close();
    }
}
