package dev.strata.offload;

import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/** {@code strata bench adamw}: the CPU AdamW's rate over n f32 parameters (weights, gradients, two moments), median of reps. */
public final class CpuAdamWBench {
    private CpuAdamWBench() {}

    /** The median rate, parameters a second. */
    public static double run(long n, int threads, int reps, PrintStream out) {
        long bytes = n * 4;
        if (bytes > Integer.MAX_VALUE) throw new IllegalArgumentException("--params " + n + ": at most " + Integer.MAX_VALUE / 4 + " (one 2 GiB buffer a tensor)");
        ByteBuffer p = filled(n, 1), g = filled(n, 2), m = filled(n, 3), v = ByteBuffer.allocateDirect((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
        var vf = v.asFloatBuffer();
        for (int i = 0; i < n; i++) vf.put(i, 1e-4f * (1 + (i & 7))); // second moments are positive
        double[] seconds = new double[reps];
        try (CpuAdamW adamw = new CpuAdamW(threads)) {
            for (int r = -2; r < reps; r++) { // two untimed: the pool's threads start, the pages are touched
                long t0 = System.nanoTime();
                adamw.update(dev.strata.runtime.DType.F32, java.util.List.of(new CpuAdamW.Part(p, g, m, v, n, new CpuAdamW.Step(0.9, 0.95, 1e-8, 1e-4, 0.5, 0.5, 0.1, 1))));
                if (r >= 0) seconds[r] = (System.nanoTime() - t0) / 1e9;
            }
        }
        Arrays.sort(seconds);
        double rate = n / seconds[reps / 2];
        out.printf(Locale.ROOT, "strata CPU AdamW: %,d f32 parameters on %d threads: median %.1f ms, %.2f G params/s (%.0f GB/s moved)%n",
                n, threads, 1e3 * seconds[reps / 2], rate / 1e9, rate * 28 / 1e9);
        out.printf(Locale.ROOT, "BENCH {\"impl\": \"strata-cpu-adamw\", \"params\": %d, \"threads\": %d, \"gparams_per_s\": %.4f}%n", n, threads, rate / 1e9);
        return rate;
    }

    private static ByteBuffer filled(long n, int seed) {
        ByteBuffer b = ByteBuffer.allocateDirect(Math.toIntExact(n * 4)).order(ByteOrder.LITTLE_ENDIAN);
        var f = b.asFloatBuffer();
        SplittableRandom rng = new SplittableRandom(seed);
        for (int i = 0; i < n; i++) f.put(i, (float) (rng.nextDouble() - 0.5) * 0.02f);
        return b;
    }
}
