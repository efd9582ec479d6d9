package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.offload.OffloadedAdamW;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.AdamW;
import dev.strata.runtime.nn.GradientSync;
import dev.strata.runtime.nn.Optimizer;
import dev.strata.runtime.nn.Parameter;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * The CPU side's update during backward (offload.update_during_backward), in F64: kept when the norm clips nothing,
 * redone when it clips, thrown away (and the device's weights restored) when a step is skipped, the weights,
 * moments and losses stay AdamW's on the device bit for bit; so they do when the update after backward runs on
 * into the next forward (offload.update_during_forward): the CPU's subgroups' weights sent up and the GPU's
 * subgroups updated as each layer needs them, with one micro-batch a step or several.
 */
class EarlyUpdateTest {
    static final Backend CPU = CpuBackend.INSTANCE;
    static final AdamW.Settings ADAM = new AdamW.Settings(0.9, 0.95, 1e-8, 0.1, false);
    static final int STEPS = 10, POISONED = 4; // step POISONED's gradients hold a NaN: skipped

    record Run(double[] losses, double[] norms, Map<String, double[]> state, String timings) {}

    @Test
    void keptRedoneAndSkippedUpdatesEqualAdamWOnTheDevice() {
        Run free = train(model -> new AdamW(model.parameters(), ADAM), 0);
        double median = Arrays.stream(free.norms()).filter(Double::isFinite).sorted().toArray()[STEPS / 2];
        // no clipping: every early update is kept; a tiny limit: every one is redone; the median norm: some of each
        for (double clip : new double[] {0, 1e-6, median}) {
            Run device = clip == 0 ? free : train(model -> new AdamW(model.parameters(), ADAM), clip);
            for (double fraction : new double[] {0, 0.5}) {
                String what = "clip " + clip + ", gpu_fraction " + fraction;
                Run early = train(model -> offloaded(model, fraction, true, "true"), clip);
                assertEquals(device.losses().length, early.losses().length, what);
                assertArrayEquals(device.losses(), early.losses(), what + ": losses");
                assertTrue(!Double.isFinite(early.norms()[POISONED - 1]) && Double.isFinite(early.norms()[POISONED]), what + ": step " + POISONED + " skipped, the next not");
                assertEquals(device.state().keySet(), early.state().keySet(), what);
                device.state().forEach((name, v) -> assertArrayEquals(v, early.state().get(name), what + ": " + name));
                boolean kept = early.timings().matches(".*updated during backward: [1-9]\\d* kept.*"), redone = early.timings().matches(".*kept, [1-9]\\d* redone.*");
                assertTrue(clip == 0 ? kept && !redone : clip < 1e-3 ? redone && !kept : kept && redone, what + ": " + early.timings());
                assertTrue(clip == 0 || early.timings().contains("CPU AdamW during the next forward"), what + ": " + early.timings()); // unclipped, all is done during backward
                assertEquals(fraction > 0, early.timings().contains("GPU subgroups updated as the next forward needs them"), what + ": " + early.timings());
            }
        }
        for (int micro : new int[] {1, 3}) {
            Run device = micro == 1 ? free : train(model -> new AdamW(model.parameters(), ADAM), 0, micro);
            for (String late : new String[] {"true", "cpu", "false"}) {
                String what = "updated after backward, update_during_forward = " + late + ", " + micro + " micro-batches";
                Run after = train(model -> offloaded(model, 0.5, false, late), 0, micro);
                assertArrayEquals(device.losses(), after.losses(), what);
                assertEquals(device.state().keySet(), after.state().keySet());
                after.state().forEach((name, v) -> assertArrayEquals(device.state().get(name), v, what + ": " + name));
                assertTrue(!after.timings().contains("during backward"), after.timings());
                assertEquals(!late.equals("false"), after.timings().contains("CPU AdamW during the next forward"), what + ": " + after.timings());
                assertEquals(late.equals("true"), after.timings().contains("GPU subgroups updated as the next forward needs them"), what + ": " + after.timings());
            }
        }
    }

    static OffloadedAdamW offloaded(Transformer model, double gpuFraction, boolean early, String late) {
        return new OffloadedAdamW(model.parameters(), new OffloadedAdamW.Settings(ADAM, "cpu", Path.of(""), gpuFraction, 2, 3_000, 0, 0, early, late, "auto"),
                GradientSync.NONE, new PrintStream(PrintStream.nullOutputStream()));
    }

    /** STEPS steps of a small Llama, one micro-batch each, clipped at clip; the weights and moments after. */
    static Run train(Function<Transformer, Optimizer> optimizer, double clip) { return train(optimizer, clip, 1); }

    /** As above, micro micro-batches a step (each its own tokens). */
    static Run train(Function<Transformer, Optimizer> optimizer, double clip, int micro) {
        ModelConfig cfg = ModelConfig.llama(97, 32, 2, 4, 2, 64, 16);
        Transformer model = new Transformer(cfg, CPU, DType.F64);
        Initializer.initialize(model, 5);
        int b = 2, t = 8;
        int[] tokens = new SplittableRandom(9).ints((long) micro * b * t + 1, 0, cfg.vocabSize()).toArray();
        int[][] x = new int[micro][], y = new int[micro][];
        for (int i = 0; i < micro; i++) {
            x[i] = Arrays.copyOfRange(tokens, i * b * t, (i + 1) * b * t);
            y[i] = Arrays.copyOfRange(tokens, i * b * t + 1, (i + 1) * b * t + 1);
        }
        double[] losses = new double[STEPS], norms = new double[STEPS];
        try (Optimizer opt = new Poisoning(optimizer.apply(model), model); TrainStep step = new TrainStep(model, opt, b, t, micro, clip, false)) {
            for (int s = 0; s < STEPS; s++) {
                TrainStep.Result r = step.run(x, y, 3e-2);
                losses[s] = r.loss();
                norms[s] = r.gradNorm();
            }
            opt.awaitUpdate(); // the last update's late weights: what reads them outside a forward waits for them
            Map<String, double[]> state = new TreeMap<>();
            model.parameters().forEach((name, p) -> state.put(name, CPU.toDoubles(p.value())));
            if (opt.stateOnHost()) for (Map.Entry<String, HostTensor> e : opt.hostState().entrySet()) state.put(e.getKey(), e.getValue().toDoubles());
            opt.state().forEach((k, v) -> state.put(k, CPU.toDoubles(v)));
            String timings = ((Poisoning) opt).inner instanceof OffloadedAdamW o ? o.timings() : "";
            return new Run(losses, norms, state, timings);
        }
    }

    /** An optimizer whose gradients hold a NaN in every parameter at the POISONED-th step (written before its backward adds to them). */
    static final class Poisoning implements Optimizer {
        final Optimizer inner;
        private final Transformer model;
        private int steps;

        Poisoning(Optimizer inner, Transformer model) {
            this.inner = inner;
            this.model = model;
        }

        @Override public void prepareStep(double lr) { inner.prepareStep(lr); }

        @Override public void startMicroBatch(boolean last) {
            if (last && ++steps == POISONED) {
                inner.awaitUpdate(); // the last update's gradients read before these are written
                for (Parameter p : model.parameters().values()) {
                    double[] g = CPU.toDoubles(p.grad());
                    g[g.length / 2] = Double.NaN;
                    try (Tensor nan = CPU.fromDoubles(g, p.grad().dtype(), p.shape())) {
                        CPU.copyInto(nan, p.grad());
                    }
                }
            }
            inner.startMicroBatch(last);
        }

        @Override public void gradientsDone(List<Parameter> params) { inner.gradientsDone(params); }

        @Override public void parametersNeeded(List<Parameter> params) { inner.parametersNeeded(params); }

        @Override public void awaitUpdate() { inner.awaitUpdate(); }

        @Override public boolean gradientPending(Parameter p) { return inner.gradientPending(p); }

        @Override public void enqueueUpdate(double maxGradNorm) { inner.enqueueUpdate(maxGradNorm); }

        @Override public double lastGradNorm() { return inner.lastGradNorm(); }

        @Override public void stepSkipped() { inner.stepSkipped(); }

        @Override public boolean capturable() { return inner.capturable(); }

        @Override public long stepCount() { return inner.stepCount(); }

        @Override public void restore(long stepCount) { inner.restore(stepCount); }

        @Override public Map<String, Tensor> state() { return inner.state(); }

        @Override public boolean stateOnHost() { return inner.stateOnHost(); }

        @Override public Map<String, HostTensor> hostState() { return inner.hostState(); }

        @Override public void close() { inner.close(); }
    }
}
