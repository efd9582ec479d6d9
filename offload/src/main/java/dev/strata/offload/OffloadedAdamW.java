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
 * its gradients come down during the step's last backward ({@link CpuSide}), where offload.update_during_backward
 * lets the CPU update them ({@link EarlyUpdates}); offload.update_during_forward lets the update after backward run
 * on into the next forward, each layer waiting for its own weights: the CPU's ({@link LateUpdates}) and the GPU's
 * subgroups ({@link GpuSide#defer}). The GPU's share is offload.gpu_fraction, or the
 * {@link SplitModel}'s measured best, chosen again once with what backward leaves the CPU time for. The numbers are
 * {@link AdamW}'s; in f64 on the CPU backend an update equals AdamW's bit for bit on every split and tier.
 * offload.gpu_state_gb keeps the first parameters' state on the device ({@link DeviceState}): only the rest is
 * offloaded and split.
 */
public final class OffloadedAdamW implements Optimizer {
    /**
     * tier: cpu or nvme (nvmeDir, staging within pinMemoryGb unless 0); gpuFraction NaN: measured; threads: the CPU
     * update's; subgroupElements: their size; gpuStateGb: the state the GPU tier keeps on the device;
     * updateDuringBackward: the CPU side updated as its gradients land ({@link EarlyUpdates}), where RAM has room;
     * updateDuringForward (true, cpu, false): the update after backward run on into the next forward, each layer
     * waiting for its own parameters: both sides' ({@link LateUpdates}, {@link GpuSide#defer}), the CPU's only, or
     * neither; cufile (auto, true, false): the nvme tier's GPU subgroups straight between their files and the device.
     */
    public record Settings(AdamW.Settings adam, String tier, Path nvmeDir, double gpuFraction, int threads, long subgroupElements, double pinMemoryGb,
                           double gpuStateGb, boolean updateDuringBackward, String updateDuringForward, String cufile) {
        boolean cpuDuringForward() { return !updateDuringForward.equals("false"); }

        boolean gpuDuringForward() { return updateDuringForward.equals("true"); }
    }

    /** CPU subgroups whose copies down run ahead of the CPU. */
    private static final int HOST_WINDOW = HostStaging.WINDOW;

    private final UpdateTimings timings = new UpdateTimings();
    private final Backend backend;
    private final AdamW.Settings adam;
    private final GradientSync sync;
    private final DType stateType;
    private final int stateBytes;
    private final List<Subgroup> subgroups = new ArrayList<>();  // a new split changes which side each is on, not what it holds
    private final List<Tensor> normGrads = new ArrayList<>();
    private final StateStore store;
    private final CpuAdamW cpu;
    private final Tensor[] schedules = new Tensor[2]; // a step's, by its parity: updates left to the next forward read theirs after the next is written
    private final Tensor gradSumSquares;
    private final DeviceState onDevice;     // the GPU tier: moments that never leave the device
    private CpuSide cpuSide;                // the split's: made again by a new split
    private GpuSide gpuSide;                // the split's too
    private final Settings settings;
    private final List<Parameter> offloaded; // those not in the GPU tier, in subgroups
    private final long n;                    // their elements
    private final PrintStream out;
    private SplitModel model;               // while the split may still be chosen again: measured, and the CPU updates during backward
    private double lr, bc1, bc2Sqrt, lastNorm = Double.NaN;
    private long step;
    private final MomentViews views;
    private boolean forwardAnnounces;        // a forward has called parametersNeeded: an update may run on into the next one
    private boolean bringUpAfterLate;        // the windows' first moments come up once what the forward updates is in

    public OffloadedAdamW(Map<String, Parameter> params, Settings settings, GradientSync sync, PrintStream out) {
        this.adam = settings.adam();
        this.sync = sync;
        this.settings = settings;
        this.out = out;
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
        this.offloaded = mine.subList(kept.size(), mine.size());
        this.n = total - onDevice.elements();
        model = Double.isNaN(settings.gpuFraction()) && n > 0 // the windows' first subgroups come up during backward where RAM holds them
                ? SplitModel.measure(backend, cpu, stateType).ahead(settings.tier().equals("cpu") ? DeviceWindows.COUNT * settings.subgroupElements() : 0) : null;
        // the CPU side's weights and gradients stay in pinned RAM where it has room: then its weights stay on the host
        // and, without a sync that changes gradients after backward, its gradients come down during backward
        FirstSplit first = FirstSplit.choose(offloaded, n, onDevice.elements(), model, settings, sync == GradientSync.NONE, stateBytes);
        subgroups.addAll(first.subgroups());
        if (model != null) out.println("offload split: " + model.explain(n, onDevice.elements(), first.fraction(), first.cpuDown()));
        try {
            this.store = StateStore.open(backend, subgroups, stateBytes, settings, first.resident() ? first.residentBytes() : 0);
        } catch (RuntimeException e) { // a store refused before the run: what is made so far goes
            cpu.close();
            onDevice.close();
            throw e;
        }
        if (first.afterBackward() != null || CpuSide.of(subgroups).isEmpty()) model = null; // the split stays: nothing updates during backward to measure
        this.cpuSide = new CpuSide(backend, cpu, stateType, subgroups, store, first.resident(), first.gradsDuringBackward(), first.afterBackward() == null,
                intoForward(false));
        for (int i = 0; i < 2; i++) schedules[i] = backend.zeros(DType.F64, 3);
        gradSumSquares = backend.zeros(DType.F64, 1);
        gpuSide = new GpuSide(backend, stateType, subgroups, store, timings);
        views = new MomentViews(store, subgroups, stateType);
        if (!onDevice.isEmpty())
            out.printf(java.util.Locale.ROOT, "offload: AdamW state of %,d parameters kept on the GPU (%.1f GB; offload.gpu_state_gb allows %s)%n", onDevice.elements(),
                    onDevice.bytes() / 1e9, new java.math.BigDecimal(settings.gpuStateGb()).round(new java.math.MathContext(3)).stripTrailingZeros().toPlainString());
        if (n > 0) first.describe(n, store.describe(), cpu.threads(), cpuSide.updatesEarly(), cpuSide.updatesLate(), gpuIntoForward()).forEach(out::println);
    }

    /**
     * Whether the GPU's (gpu) or the CPU's update after backward may run on into the next forward: asked for, tier
     * cpu (it reads no files), one process.
     */
    private boolean intoForward(boolean gpu) {
        return (gpu ? settings.gpuDuringForward() : settings.cpuDuringForward()) && settings.tier().equals("cpu") && sync == GradientSync.NONE;
    }

    /** Whether the GPU's subgroups may be left to the next forward: where the CPU's run into it too (else their moments cross the link beside it), or there are none. */
    private boolean gpuIntoForward() { return intoForward(true) && (cpuSide.updatesLate() || cpuSide.size() == 0); }

    /** This step's learning rate and bias corrections on the device. */
    private Tensor schedule() { return schedules[(int) (step & 1)]; }

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

    @Override public void prepareStep(double lr) {
        step++;
        this.lr = lr;
        bc1 = 1 - Math.pow(adam.beta1(), step);
        bc2Sqrt = Math.sqrt(1 - Math.pow(adam.beta2(), step));
        try (Tensor s = backend.fromDoubles(new double[] {lr, bc1, bc2Sqrt}, DType.F64, 3)) {
            backend.copyInto(s, schedule());
        }
    }

    @Override public boolean capturable() { return false; }

    /**
     * The global norm (the host waits for backward here, so the device is idle and copies need not wait for it),
     * then every subgroup in order: a GPU one enqueued whole (moments up into a {@link DeviceWindows window} unless
     * they came up during backward, AdamW on the device, moments down), a CPU one updated here from its weights and
     * gradients (what is not on the host yet streamed down {@link #HOST_WINDOW} subgroups ahead, unless kept from
     * its update during backward), and its weights sent back up. The host waits only for the
     * CPU side's copies down; the compute stream waits once, at the end, for the CPU side's weights, while the GPU
     * subgroups' moments go on down beside the next forward. Where a forward announces its layers, the GPU's
     * subgroups are left to it ({@link GpuSide#defer}), and so are the CPU's where they come last with nothing to
     * bring down ({@link LateUpdates}): the next forward waits for each layer's own. Nothing is updated when the
     * norm is not finite.
     */
    @Override public void enqueueUpdate(double maxGradNorm) {
        awaitUpdate();
        long t0 = System.nanoTime(), window = 0;
        cpuSide.backwardEnqueued();
        backend.sumOfSquares(normGrads, gradSumSquares);
        if (cpuSide.earlyActive()) timings.earlyWindowNanos += window = cpuSide.updateUntil(backend.record()); // the CPU goes on with what backward finished
        sync.reduceNormSquares(gradSumSquares);
        lastNorm = Math.sqrt(backend.toDoubles(gradSumSquares)[0]);
        timings.normNanos += System.nanoTime() - t0;
        if (Double.isFinite(lastNorm)) {
            if (update(maxGradNorm) && model != null && cpuSide.earlyCapacity() > 0) splitAgain(window / 1e9, cpuSide.earlyCapacity());
        } else {
            cpuSide.skip();
        }
        timings.totalNanos += System.nanoTime() - t0;
        timings.steps++;
    }

    /** Where the update's host time went since the last call, a step on average (and starts counting again). */
    public String timings() {
        long[] late = cpuSide.lateNanos();
        timings.lateNanos += late[0];
        timings.lateWaitNanos += late[1];
        return timings.report();
    }

    /** The update of a step with a finite norm; returns whether the CPU's updates during backward were kept. */
    private boolean update(double maxGradNorm) {
        DeviceUpdate gpuUpdate = new DeviceUpdate(adam, maxGradNorm, schedule(), gradSumSquares);
        onDevice.enqueueUpdate(gpuUpdate); // first: the device works on it while the first copies come
        double gradScale = CpuAdamW.clipScale(stateType, maxGradNorm, lastNorm);
        Backend.Event lastUp = Backend.DONE; // the copy stream runs in order: the compute stream waits for the last copy up
        boolean early = cpuSide.earlyActive(), keep = early && gradScale == 1.0;
        boolean gpuFirst = gpuFirst(), late = gpuFirst && cpuSide.updatesLate() && forwardAnnounces; // the CPU's subgroups come last, nothing to bring down
        boolean gpuLate = forwardAnnounces && gpuIntoForward() && (gpuFirst || cpuSide.size() == 0);
        if (gpuLate) gpuSide.defer(gpuUpdate);
        List<Subgroup> order = gpuLate ? CpuSide.of(subgroups)
                : gpuFirst ? java.util.stream.Stream.concat(gpuSide.subgroups().stream(), CpuSide.of(subgroups).stream()).toList() : subgroups;
        if (early) {
            long t0 = System.nanoTime();
            if (keep) lastUp = cpuSide.keep();
            else timings.earlyDropped += cpuSide.drop(); // updated again below from the untouched state, and sent up again
            timings.cpuNanos += System.nanoTime() - t0;
        }
        List<List<Backend.Event>> down = new ArrayList<>();
        List<Backend.Event> up = new ArrayList<>();    // each CPU subgroup's last copy up (one stream: in order)
        for (int c = 0; c < Math.min(HOST_WINDOW, cpuSide.size()); c++) down.add(cpuSide.sendDown(c, Backend.DONE));
        int c = 0;
        for (int j = 0; j < order.size(); j++) {
            Subgroup k = order.get(j);
            if (k.onGpu()) {
                long t1 = System.nanoTime();
                gpuSide.update(k, store.direct(k) ? null : open(order, j), gpuUpdate);
                timings.deviceNanos += System.nanoTime() - t1;
            } else {
                StateBlock b = open(order, j);
                long t1 = System.nanoTime();
                CpuSide.awaitAll(down.get(c));
                timings.copyWaitNanos += System.nanoTime() - t1;
                if (keep && cpuSide.kept(c)) {
                    timings.earlyKept++;
                    up.add(Backend.DONE);
                } else if (late) {
                    cpuSide.updateLate(c, b, p -> step(p, gradScale));
                    up.add(Backend.DONE);
                } else {
                    up.add(lastUp = cpuSide.update(c, b, p -> step(p, gradScale), timings));
                }
                store.done(k);
                if (c + HOST_WINDOW < cpuSide.size()) // a window block is free once the copy up that read it is done
                    down.add(cpuSide.sendDown(c + HOST_WINDOW, cpuSide.resident() ? Backend.DONE : up.get(c)));
                c++;
            }
        }
        long t1 = System.nanoTime();
        // the next forward waits for the CPU side's weights (each layer for its own where they are updated late); the
        // GPU subgroups' moments go on down beside it
        backend.waitFor(lastUp);
        cpuSide.updated(); // after the wait: the bf16 copies read the new weights
        up.forEach(Backend.Event::close);
        lastUp.close(); // the early updates' last copy, where no copy after it is in up (an event closes once)
        gpuSide.landAll();
        store.readAhead(subgroups); // the next update's first state from disk, during forward and backward
        timings.endNanos += System.nanoTime() - t1;
        return keep;
    }

    /**
     * Once, after the first step whose CPU updates during backward were kept, some done: the split chosen again with what
     * backward left the CPU time to update (early elements), which comes off the CPU's share after backward. A
     * split that moves subgroups between the sides makes the CPU side and the windows again (their weights come
     * down at the next update); one that would not keep the CPU side's buffers in RAM is not taken.
     */
    private void splitAgain(double window, double early) {
        awaitUpdate();
        SplitModel measured = model.early(early);
        model = null;
        double f = measured.bestFraction(n, onDevice.elements(), 0);
        List<Subgroup> split = Subgroup.split(offloaded, settings.subgroupElements(), f);
        List<Subgroup> onCpu = CpuSide.of(split);
        String why = String.format(java.util.Locale.ROOT, "offload split: backward left the CPU %.0f ms, time to update %,.0f parameters beside it; ", 1e3 * window, early);
        if (split.stream().map(Subgroup::onGpu).toList().equals(subgroups.stream().map(Subgroup::onGpu).toList())) {
            out.println(why + "the split stays");
            return;
        }
        long bytes = HostStaging.residentBytes(onCpu, stateBytes) + EarlyUpdates.bytes(onCpu, stateBytes);
        if (bytes > StateStore.spareRam(split, stateBytes, settings)) {
            out.printf(java.util.Locale.ROOT, "%sthe split stays: a GPU share of %.0f%% needs %.1f GB of pinned RAM for the CPU's side%n", why, 100 * f, bytes / 1e9);
            return;
        }
        backend.synchronize(); // nothing in flight reads the buffers let go
        cpuSide.close();
        gpuSide.close();
        subgroups.clear();
        subgroups.addAll(split);
        cpuSide = new CpuSide(backend, cpu, stateType, subgroups, store, true, true, true, intoForward(false));
        gpuSide = new GpuSide(backend, stateType, subgroups, store, timings);
        out.println(why + measured.explain(n, onDevice.elements(), f, 0) + String.format(java.util.Locale.ROOT, "; %d of %d subgroups on the GPU now",
                split.stream().filter(Subgroup::onGpu).count(), split.size()));
    }

    /**
     * Whether an update takes the GPU's subgroups first, then the CPU's: where the CPU's need nothing to come down
     * (it would queue behind the GPU's moments) and the store reads no files, so that the link carries those moments
     * while the CPU works, not only between its subgroups. Else the model's order, in which files are read ahead.
     */
    private boolean gpuFirst() { return cpuSide.onHost() && subgroups.stream().noneMatch(store::writesBack); }

    /** The j-th subgroup's block from the store, the next one read ahead. */
    private StateBlock open(List<Subgroup> order, int j) {
        long t0 = System.nanoTime();
        StateBlock b = store.open(order.get(j));
        if (j + 1 < order.size()) store.prefetch(order.get(j + 1));
        timings.storeNanos += System.nanoTime() - t0;
        return b;
    }

    @Override public void startMicroBatch(boolean last) {
        cpuSide.startMicroBatch(last, p -> step(p, 1.0));
        if (last && latePending()) bringUpAfterLate = true; // behind the late weights and moments on the link, not before them
        else if (last) gpuSide.bringUpEarly();
    }

    /** Forward has read every parameter by now (a backward finished some): whatever was updated late is in. */
    @Override public void gradientsDone(List<Parameter> params) {
        awaitUpdate();
        cpuSide.gradientsDone(params);
    }

    @Override public void parametersNeeded(List<Parameter> params) {
        forwardAnnounces = true;
        cpuSide.parametersNeeded(params);
        gpuSide.need(params);
        if (!latePending()) awaitUpdate();
    }

    /** Whether some parameter's update is left to the next forward still: the CPU's weights not sent up, or a GPU subgroup not enqueued. */
    private boolean latePending() { return cpuSide.latePending() || gpuSide.pending(); }

    @Override public boolean gradientPending(Parameter p) { return gpuSide.readsLater(p); }

    /**
     * The late updates' weights all on the device (the compute stream waits for them) and the GPU's subgroups left
     * to the forward all enqueued, then the windows' first moments come up.
     */
    @Override public void awaitUpdate() {
        cpuSide.finishLate();
        gpuSide.finish();
        if (bringUpAfterLate) {
            bringUpAfterLate = false;
            gpuSide.bringUpEarly();
        }
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
        awaitUpdate();
        this.step = stepCount;
        cpuSide.weightsChanged(); // the device's weights were loaded too
        gpuSide.forgetEarly();
        views.writeBack();
    }

    @Override public boolean stateOnHost() { return true; }

    /** The offloaded moments by checkpoint name where they live ({@link MomentViews}), once the last update's copies have landed. */
    @Override public Map<String, HostTensor> hostState() {
        awaitUpdate();
        backend.synchronize();
        gpuSide.awaitLanded();
        return views.read();
    }

    /** The GPU tier's moments; the offloaded ones are read where they live ({@link #hostState}). */
    @Override public Map<String, Tensor> state() {
        awaitUpdate();
        return onDevice.state();
    }

    @Override public void close() {
        awaitUpdate();
        cpuSide.close();
        onDevice.close();
        gpuSide.close();
        store.close();
        cpu.close();
        for (Tensor t : schedules) t.close();
        gradSumSquares.close();
    }
}
