package dev.strata.trainer.train;

import dev.strata.quant.Fp8Linear;
import dev.strata.quant.Rotation;
import dev.strata.quant.Scaling;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.runtime.nn.DenseLinear;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.Parameter;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * What {@code strata bench linear} measures: one linear layer's forward and backward (its three GEMMs) on bf16
 * activations, dense bf16 against {@link Fp8Linear} at each rotation level with current scaling, and at level "all"
 * with delayed and with rowwise scaling, and with delayed scaling and full-size blocks. A sample is one optimizer
 * step of {@code microBatches} forwards and backwards, reported per micro-batch: the weight's low-precision copies
 * are refreshed once at its start, as after an update, so the FP8 layer quantizes its weight once per step. Steps
 * are timed as training runs them, replayed from a CUDA graph and timed with events (launched one by one from the
 * host they are printed too: FP8 launches more, smaller kernels); the variants take turns, so a drift of the clocks
 * falls on all of them. One more step timed op by op splits the device time into GEMMs and quantization.
 */
public final class LinearBench {
    private LinearBench() {}

    public record Row(String variant, double medianMs, double eagerMs, double tflops, double speedup, double quantizeShare) {}

    /** One variant under test: its layer, the step captured as a graph, and the step times (ms a micro-batch). */
    private record Case(String name, Parameter weight, Linear layer, Backend.Graph graph, double[] ms, double[] eagerMs) {}

    /** {@code only}: the FP8 variants to time, by name (null: all); bf16 always runs, as the baseline. */
    public static Map<String, Row> run(CudaBackend gpu, int n, int in, int out, int block, int microBatches, List<String> only,
            int warmup, int steps, PrintStream o) {
        SplittableRandom rng = new SplittableRandom(1);
        Map<String, Row> rows = new LinkedHashMap<>();
        try (Tensor x = gpu.fromDoubles(rng.doubles((long) n * in, -1, 1).toArray(), DType.BF16, n, in);
             Tensor dy = gpu.fromDoubles(rng.doubles((long) n * out, -1e-3, 1e-3).toArray(), DType.BF16, n, out)) {
            double[] w = rng.doubles((long) out * in, -0.02, 0.02).toArray();
            Map<String, Fp8Linear.Settings> variants = new LinkedHashMap<>();
            variants.put("bf16", null);
            for (Rotation r : Rotation.values()) variants.put("fp8 " + r.configName(), new Fp8Linear.Settings(r, block, true));
            variants.put("fp8 all delayed", new Fp8Linear.Settings(Rotation.ALL, block, true, Scaling.DELAYED, 16));
            variants.put("fp8 all rowwise", new Fp8Linear.Settings(Rotation.ALL, block, true, Scaling.ROWWISE, 0));
            variants.put("fp8 all full", new Fp8Linear.Settings(Rotation.ALL, Fp8Linear.FULL_BLOCK, true, Scaling.DELAYED, 16));
            if (only != null) {
                for (String name : only)
                    if (!variants.containsKey(name.trim())) throw new IllegalArgumentException("--variants: no variant '" + name + "'; there are " + variants.keySet());
                variants.keySet().removeIf(name -> !name.equals("bf16") && only.stream().noneMatch(v -> v.trim().equals(name)));
            }
            List<Case> cases = new ArrayList<>();
            try {
                for (var variant : variants.entrySet()) {
                    Parameter p = new Parameter("bench.weight", Parameter.Kind.LINEAR_WEIGHT, gpu.fromDoubles(w, DType.F32, out, in));
                    Linear layer = variant.getValue() == null ? new DenseLinear(p, null) : new Fp8Linear("bench", p, null, variant.getValue());
                    for (int s = 0; s < warmup; s++) step(layer, p, x, dy, microBatches); // compiles, picks GEMM algorithms, fills amax histories
                    cases.add(new Case(variant.getKey(), p, layer, gpu.capture(() -> step(layer, p, x, dy, microBatches)), new double[steps], new double[steps]));
                }
                for (int s = 0; s < steps; s++)
                    for (Case c : cases) {
                        c.ms()[s] = gpu.deviceMs(c.graph()::replay) / microBatches;
                        gpu.synchronize();
                        long t0 = System.nanoTime();
                        step(c.layer(), c.weight(), x, dy, microBatches);
                        gpu.synchronize();
                        c.eagerMs()[s] = (System.nanoTime() - t0) / 1e6 / microBatches;
                    }
                double denseMs = median(cases.get(0).ms());
                for (Case c : cases) {
                    gpu.timeOps(true);
                    step(c.layer(), c.weight(), x, dy, microBatches);
                    gpu.timeOps(false);
                    double quantize = 0, total = 0;
                    Map<String, Double> times = gpu.opTimes();
                    for (var e : times.entrySet()) {
                        total += e.getValue();
                        if (e.getKey().startsWith("fp8_")) quantize += e.getValue();
                    }
                    double ms = median(c.ms());
                    Row r = new Row(c.name(), ms, median(c.eagerMs()), 6.0 * n * in * out / (ms / 1e3) / 1e12, denseMs / ms, quantize / total);
                    rows.put(c.name(), r);
                    o.printf(Locale.ROOT, "  %-16s %8.3f ms %8.1f TFLOP/s %6.2fx bf16   quantize %4.1f%% of device time   launched from the host %8.3f ms%n",
                            r.variant(), r.medianMs(), r.tflops(), r.speedup(), 100 * r.quantizeShare(), r.eagerMs());
                    StringBuilder ops = new StringBuilder("    ");
                    times.forEach((op, opMs) -> ops.append(String.format(Locale.ROOT, "%s %.3f  ", op, opMs / microBatches)));
                    o.println(ops.toString().stripTrailing());
                }
            } finally {
                for (Case c : cases) {
                    c.graph().close();
                    c.weight().value().close();
                    c.weight().releaseGrad();
                    c.layer().discard();
                }
            }
        }
        return rows;
    }

    private static double median(double[] v) {
        double[] sorted = v.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    private static void step(Linear layer, Parameter p, Tensor x, Tensor dy, int microBatches) {
        layer.endStep();
        p.markUpdated();
        for (int i = 0; i < microBatches; i++)
            try (Tensor y = layer.forward(x); Tensor dx = layer.backward(dy)) {
                // outputs are freed; the weight gradient accumulates
            }
    }
}
