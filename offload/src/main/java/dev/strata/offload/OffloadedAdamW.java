package dev.strata.offload;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.nn.Optimizer;
import dev.strata.runtime.nn.Parameter;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW with its state off the device (offload.optimizer = cpu | nvme), updated by the CPU and the GPU in turn
 * (Deep Optimizer States): the parameters are cut into subgroups; a GPU subgroup's moments are streamed up, updated
 * there and streamed back while the CPU updates the other subgroups from their gradients (streamed down) into their
 * master weights, which go back up before the next forward. The GPU's share is offload.gpu_fraction, or the
 * {@link SplitModel}'s measured best. The numbers are {@link AdamW}'s; in f64 on the CPU backend an update equals
 * AdamW's bit for bit on every split and tier.
 */
public final class OffloadedAdamW implements Optimizer {
    /** tier: cpu or nvme (nvmeDir, staging within pinMemoryGb unless 0); gpuFraction NaN: measured; threads: the CPU update's; subgroupElements: their size. */
    public record Settings(AdamW.Settings adam, String tier, Path nvmeDir, double gpuFraction, int threads, long subgroupElements, double pinMemoryGb) {}

    /** A GPU subgroup whose moments are on their way back: its scratch lives until they have landed. */
    private record InFlight(Subgroup subgroup, Backend.Event landed, List<Tensor> scratch) {}

    private final Backend backend;
    private final AdamW.Settings adam;
    private final GradientSync sync;
    private final DType stateType;
    private final int stateBytes;
    private final List<Subgroup> subgroups = new ArrayList<>();
    private final List<Tensor> normGrads = new ArrayList<>();
    private final StateStore store;
    private final CpuAdamW cpu;
    private final Tensor schedule, gradSumSquares;
    private final double gpuFraction;
    private double lr, bc1, bc2Sqrt, lastNorm = Double.NaN;
    private long step;
    private Map<String, Tensor> stateCopies = Map.of();

    public OffloadedAdamW(Map<String, Parameter> params, Settings settings, GradientSync sync, PrintStream out) {
        this.adam = settings.adam();
        this.sync = sync;
        List<Parameter> mine = new ArrayList<>();
        params.values().forEach(p -> { if (p.trainable() && sync.updates(p)) mine.add(p); });
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
        if (Double.isNaN(settings.gpuFraction())) {
            SplitModel model = SplitModel.measure(backend, cpu, stateType);
            gpuFraction = model.bestFraction(total);
            out.println("offload split: " + model.explain(total, gpuFraction));
        } else {
            gpuFraction = settings.gpuFraction();
        }
        // GPU subgroups spread through the order, so the device always has some while the CPU works on others
        double credit = 0;
        for (List<Parameter> group : Subgroup.partition(mine, settings.subgroupElements())) {
            long n = group.stream().mapToLong(p -> p.value().numel()).sum();
            credit += gpuFraction * n;
            boolean onGpu = credit >= n / 2.0 && gpuFraction > 0;
            if (onGpu) credit -= n;
            subgroups.add(Subgroup.of(subgroups.size(), group, onGpu));
        }
        this.store = settings.tier().equals("nvme") ? new NvmeStateStore(backend, subgroups, stateBytes, settings.nvmeDir(), settings.pinMemoryGb())
                : new HostStateStore(backend, subgroups, stateBytes);
        schedule = backend.zeros(DType.F64, 3);
        gradSumSquares = backend.zeros(DType.F64, 1);
        loadMasters();
        long onGpu = subgroups.stream().filter(Subgroup::onGpu).mapToLong(Subgroup::elements).sum();
        out.printf(java.util.Locale.ROOT, "offload: AdamW state of %,d parameters in %s, %d subgroups, %d updated by the GPU (%.0f%%), the rest by %d CPU threads%n",
                total, store.describe(), subgroups.size(), subgroups.stream().filter(Subgroup::onGpu).count(), total == 0 ? 0 : 100.0 * onGpu / total, cpu.threads());
    }

    /** A CPU subgroup's master weights start as the device's values; its moments, and every GPU subgroup's, at zero. */
    private void loadMasters() {
        for (Subgroup k : subgroups) {
            StateBlock b = store.open(k);
            if (!k.onGpu()) {
                List<Backend.Event> copies = new ArrayList<>();
                for (int i = 0; i < k.params().size(); i++) copies.add(backend.copyToHost(k.params().get(i).value(), window(b.master(), k, i)));
                awaitAll(copies);
            }
            store.done(k);
        }
        store.flush();
    }

    /** Waits for the copies and lets their events go (each holds a CUDA event). */
    private static void awaitAll(List<Backend.Event> copies) {
        for (Backend.Event e : copies) {
            e.await();
            e.close();
        }
    }

    /** The compute stream waits for the copy; its event goes once the wait is enqueued. */
    private void computeWaitsFor(Backend.Event copy) {
        backend.waitFor(copy);
        copy.close();
    }

    private Backend.HostBuffer window(Backend.HostBuffer part, Subgroup k, int i) {
        return StateBlock.window(part, k.offsets()[i] * stateBytes, k.params().get(i).value().numel() * stateBytes);
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
     * The global norm (the host waits for backward here), then every subgroup in order: a GPU one enqueued (its
     * moments up, AdamW on the device, its moments down; two in flight at most), a CPU one updated here from its
     * gradients, its weights sent up before the step's end. Nothing is updated when the norm is not finite.
     */
    @Override public void enqueueUpdate(double maxGradNorm) {
        backend.sumOfSquares(normGrads, gradSumSquares);
        sync.reduceNormSquares(gradSumSquares);
        lastNorm = Math.sqrt(backend.toDoubles(gradSumSquares)[0]);
        if (!Double.isFinite(lastNorm)) return;
        double gradScale = maxGradNorm > 0 ? Math.min(1.0, maxGradNorm / (lastNorm + 1e-6)) : 1.0;
        ArrayDeque<InFlight> inFlight = new ArrayDeque<>();
        for (int j = 0; j < subgroups.size(); j++) {
            Subgroup k = subgroups.get(j);
            StateBlock b = store.open(k);
            if (j + 1 < subgroups.size()) store.prefetch(subgroups.get(j + 1));
            if (k.onGpu()) {
                if (inFlight.size() == 2) land(inFlight.poll(), true);
                inFlight.add(onDevice(k, b, maxGradNorm));
            } else {
                onHost(k, b, gradScale);
                store.done(k);
            }
            while (!inFlight.isEmpty() && inFlight.peek().landed().done()) land(inFlight.poll(), false);
        }
        while (!inFlight.isEmpty()) land(inFlight.poll(), true);
    }

    private InFlight onDevice(Subgroup k, StateBlock b, double maxGradNorm) {
        List<Tensor> scratch = new ArrayList<>();
        List<Backend.AdamWSlot> slots = new ArrayList<>();
        for (int i = 0; i < k.params().size(); i++) {
            Parameter p = k.params().get(i);
            Tensor m = backend.empty(stateType, p.shape()), v = backend.empty(stateType, p.shape());
            scratch.add(m);
            scratch.add(v);
            computeWaitsFor(backend.copyFromHost(window(b.m(), k, i), m));
            computeWaitsFor(backend.copyFromHost(window(b.v(), k, i), v));
            slots.add(new Backend.AdamWSlot(p.value(), p.grad(), m, v, AdamW.weightDecay(adam, p), AdamW.bf16Copy(p)));
        }
        backend.adamw(slots, new Backend.AdamWSettings(adam.beta1(), adam.beta2(), adam.eps(), maxGradNorm), schedule, gradSumSquares);
        for (int i = 0; i < k.params().size(); i++) k.params().get(i).markUpdated(slots.get(i).copy() != null);
        Backend.Event landed = Backend.DONE;
        for (int i = 0; i < k.params().size(); i++) {
            backend.copyToHost(scratch.get(2 * i), window(b.m(), k, i)).close();
            landed.close();
            landed = backend.copyToHost(scratch.get(2 * i + 1), window(b.v(), k, i)); // one copy stream: the last lands last
        }
        return new InFlight(k, landed, scratch);
    }

    private void land(InFlight f, boolean wait) {
        if (wait) f.landed().await();
        f.landed().close();
        f.scratch().forEach(Tensor::close);
        store.done(f.subgroup());
    }

    private void onHost(Subgroup k, StateBlock b, double gradScale) {
        List<Backend.Event> down = new ArrayList<>();
        for (int i = 0; i < k.params().size(); i++) down.add(backend.copyToHost(k.params().get(i).grad(), window(b.grads(), k, i)));
        for (int i = 0; i < k.params().size(); i++) {
            Parameter p = k.params().get(i);
            down.get(i).await();
            down.get(i).close();
            var s = new CpuAdamW.Step(adam.beta1(), adam.beta2(), adam.eps(), lr / bc1, bc2Sqrt, 1 - lr * AdamW.weightDecay(adam, p), gradScale);
            cpu.update(stateType, window(b.master(), k, i).bytes(), window(b.grads(), k, i).bytes(), window(b.m(), k, i).bytes(),
                    window(b.v(), k, i).bytes(), p.value().numel(), s);
            computeWaitsFor(backend.copyFromHost(window(b.master(), k, i), p.value()));
            p.markUpdated(false);
        }
    }

    @Override public double lastGradNorm() { return lastNorm; }

    @Override public void stepSkipped() { step--; }

    @Override public long stepCount() { return step; }

    /**
     * A checkpoint's moments were loaded into the tensors {@link #state} gave, and its weights into the parameters:
     * both go to where the state lives.
     */
    @Override public void restore(long stepCount) {
        this.step = stepCount;
        for (Subgroup k : subgroups) {
            StateBlock b = store.open(k);
            List<Backend.Event> copies = new ArrayList<>();
            for (int i = 0; i < k.params().size(); i++) {
                Parameter p = k.params().get(i);
                Tensor m = stateCopies.get("exp_avg." + p.name()), v = stateCopies.get("exp_avg_sq." + p.name());
                if (m != null) copies.add(backend.copyToHost(m, window(b.m(), k, i)));
                if (v != null) copies.add(backend.copyToHost(v, window(b.v(), k, i)));
                if (!k.onGpu()) copies.add(backend.copyToHost(p.value(), window(b.master(), k, i)));
            }
            awaitAll(copies);
            store.done(k);
        }
        store.flush();
    }

    /**
     * The moments as device tensors by checkpoint name (exp_avg.P, exp_avg_sq.P), copied up from where they live
     * for a checkpoint to read or a restore to fill; they live until the next call.
     */
    @Override public Map<String, Tensor> state() {
        stateCopies.values().forEach(Tensor::close);
        Map<String, Tensor> m = new LinkedHashMap<>(), v = new LinkedHashMap<>();
        for (Subgroup k : subgroups) {
            StateBlock b = store.open(k);
            List<Backend.Event> copies = new ArrayList<>();
            for (int i = 0; i < k.params().size(); i++) {
                Parameter p = k.params().get(i);
                Tensor mt = backend.empty(stateType, p.shape()), vt = backend.empty(stateType, p.shape());
                copies.add(backend.copyFromHost(window(b.m(), k, i), mt));
                copies.add(backend.copyFromHost(window(b.v(), k, i), vt));
                m.put("exp_avg." + p.name(), mt);
                v.put("exp_avg_sq." + p.name(), vt);
            }
            awaitAll(copies);
            store.done(k);
        }
        Map<String, Tensor> out = new LinkedHashMap<>(m);
        out.putAll(v);
        stateCopies = out;
        return out;
    }

    @Override public void close() {
        stateCopies.values().forEach(Tensor::close);
        store.close();
        cpu.close();
        schedule.close();
        gradSumSquares.close();
    }
}
