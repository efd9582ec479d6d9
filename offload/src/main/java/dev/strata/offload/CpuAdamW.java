package dev.strata.offload;

import dev.strata.runtime.DType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * PyTorch's AdamW on the host, over parameter, gradient and moment buffers laid out as a tensor's little-endian
 * bytes (pinned memory the device copies to and from): every core, in chunks that stay in cache (loaded into
 * arrays, updated with the Vector API, stored back). The arithmetic is the device's, rounding for rounding: in f32
 * the CUDA kernel's (optimizer.cu, fused where it fuses), in f64 the CPU backend's, so an update here equals one
 * there bit for bit and where a subgroup is updated changes nothing.
 */
public final class CpuAdamW implements AutoCloseable {
    /** One update's numbers: bc1 = 1 - beta1^t, bc2Sqrt = sqrt(1 - beta2^t); the gradients are multiplied by gradScale. */
    public record Step(double beta1, double beta2, double eps, double lr, double bc1, double bc2Sqrt, double weightDecay, double gradScale) {}

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int TILE = 8192;           // elements a task holds in arrays at once (its 4 arrays, 128 KB, stay in L2)
    private static final int TASK = 32 * TILE;      // elements a task takes
    private final ForkJoinPool pool;
    private final ThreadLocal<float[][]> floats = ThreadLocal.withInitial(() -> new float[4][TILE]);

    public CpuAdamW(int threads) { this.pool = new ForkJoinPool(threads); }

    public int threads() { return pool.getParallelism(); }

    /**
     * What the gradients are multiplied by to clip their global norm to maxGradNorm (0: no clipping), as the
     * device's update of this state type computes it: the f32 kernel reads the limit as a float.
     */
    public static double clipScale(DType type, double maxGradNorm, double norm) {
        double limit = type == DType.F32 ? (float) maxGradNorm : maxGradNorm;
        return limit > 0 ? Math.min(1.0, limit / (norm + 1e-6)) : 1.0;
    }

    /**
     * n elements of p, m and v updated from g by step's numbers, written to pOut, mOut and vOut: in place where they
     * are the same buffers, beside them where an update may still be thrown away (see {@link EarlyUpdates}).
     */
    public record Part(ByteBuffer p, ByteBuffer g, ByteBuffer m, ByteBuffer v, long n, Step step, ByteBuffer pOut, ByteBuffer mOut, ByteBuffer vOut) {
        public Part(ByteBuffer p, ByteBuffer g, ByteBuffer m, ByteBuffer v, long n, Step step) { this(p, g, m, v, n, step, p, m, v); }
    }

    /**
     * Every part at once, in f32 or f64 (type), cut into tasks across all of them: a subgroup's small tensors (norms,
     * a GQA head's projections) keep every core busy together instead of one after another.
     */
    public void update(DType type, List<Part> parts) {
        List<Runnable> work = new ArrayList<>();
        for (Part part : parts) {
            int count = Math.toIntExact(part.n());
            for (int from = 0; from < count; from += TASK) {
                int a = from, b = Math.min(count, from + TASK);
                work.add(type == DType.F64 ? () -> f64(part, a, b) : () -> f32(part, a, b));
            }
        }
        if (work.size() == 1) {
            work.get(0).run();
            return;
        }
        List<ForkJoinTask<?>> tasks = new ArrayList<>();
        for (Runnable r : work) tasks.add(pool.submit(r));
        for (ForkJoinTask<?> t : tasks) t.join();
    }

    private static FloatBuffer floats(ByteBuffer b) { return b.duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer(); }

    private static DoubleBuffer doubles(ByteBuffer b) { return b.duplicate().order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer(); }

    private void f32(Part part, int from, int to) {
        FloatBuffer p = floats(part.p()), g = floats(part.g()), m = floats(part.m()), v = floats(part.v()), pOut = floats(part.pOut()), mOut = floats(part.mOut()),
                vOut = floats(part.vOut());
        Step s = part.step();
        float[][] a = floats.get();
        float[] pa = a[0], ga = a[1], ma = a[2], va = a[3];
        float b1 = (float) s.beta1(), b2 = (float) s.beta2(), eps = (float) s.eps(), lr = (float) s.lr(), bc2 = (float) s.bc2Sqrt(),
                stepSize = lr / (float) s.bc1(), decay = 1f - lr * (float) s.weightDecay(), scale = (float) s.gradScale(), oneMinusB1 = 1f - b1, oneMinusB2 = 1f - b2;
        FloatVector oneMinusB1s = FloatVector.broadcast(F, oneMinusB1), b2s = FloatVector.broadcast(F, b2), decays = FloatVector.broadcast(F, decay);
        for (int start = from; start < to; start += TILE) {
            int len = Math.min(TILE, to - start);
            p.get(start, pa, 0, len);
            g.get(start, ga, 0, len);
            m.get(start, ma, 0, len);
            v.get(start, va, 0, len);
            int i = 0;
            for (int upper = F.loopBound(len); i < upper; i += F.length()) {
                FloatVector gi = FloatVector.fromArray(F, ga, i).mul(scale);
                FloatVector mi = FloatVector.fromArray(F, ma, i);
                mi = oneMinusB1s.fma(gi.sub(mi), mi);
                FloatVector vi = b2s.fma(FloatVector.fromArray(F, va, i), gi.mul(oneMinusB2).mul(gi));
                FloatVector denom = vi.lanewise(VectorOperators.SQRT).div(bc2).add(eps);
                FloatVector.fromArray(F, pa, i).fma(decays, mi.mul(stepSize).div(denom).neg()).intoArray(pa, i);
                mi.intoArray(ma, i);
                vi.intoArray(va, i);
            }
            for (; i < len; i++) {
                float gi = ga[i] * scale;
                ma[i] = Math.fma(oneMinusB1, gi - ma[i], ma[i]);
                va[i] = Math.fma(b2, va[i], oneMinusB2 * gi * gi);
                pa[i] = Math.fma(pa[i], decay, -(stepSize * ma[i] / ((float) Math.sqrt(va[i]) / bc2 + eps)));
            }
            pOut.put(start, pa, 0, len);
            mOut.put(start, ma, 0, len);
            vOut.put(start, va, 0, len);
        }
    }

    /** Scalar, in the CPU backend's order of operations: what makes the two bit-identical (f64 is for tests: no tiles). */
    private static void f64(Part part, int from, int to) {
        DoubleBuffer p = doubles(part.p()), g = doubles(part.g()), m = doubles(part.m()), v = doubles(part.v()), pOut = doubles(part.pOut()),
                mOut = doubles(part.mOut()), vOut = doubles(part.vOut());
        Step s = part.step();
        double stepSize = s.lr() / s.bc1(), decay = 1 - s.lr() * s.weightDecay();
        for (int i = from; i < to; i++) {
            double gi = g.get(i) * s.gradScale();
            double mi = m.get(i) + (1 - s.beta1()) * (gi - m.get(i));
            double vi = s.beta2() * v.get(i) + (1 - s.beta2()) * gi * gi;
            mOut.put(i, mi);
            vOut.put(i, vi);
            pOut.put(i, p.get(i) * decay - stepSize * mi / (Math.sqrt(vi) / s.bc2Sqrt() + s.eps()));
        }
    }

    @Override public void close() { pool.shutdown(); }
}
