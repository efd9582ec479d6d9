package dev.strata.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Fp8;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every CUDA op against the CPU backend on random inputs of awkward shapes (odd sizes, not multiples of any tile),
 * forward and backward, relative error ‖gpu − cpu‖ / ‖cpu‖ within 1e-5 for f32 activations and 2e-2 for bf16. In
 * bf16 the inputs are rounded to bf16 first, so the CPU's f32 reference sees the numbers the GPU sees; parameters
 * (weights, biases, tables) are f32 in both.
 */
@Tag("gpu")
class CudaBackendTest {
    static final CpuBackend CPU = CpuBackend.INSTANCE;
    static CudaBackend gpu;
    final SplittableRandom rng = new SplittableRandom(17);

    static final String UNAVAILABLE = CudaBackend.unavailableReason();

    @BeforeEach
    void open() {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CUDA test skipped: " + UNAVAILABLE);
        if (gpu == null) gpu = CudaBackend.open(0);
    }

    @AfterAll
    static void close() {
        if (gpu != null) {
            System.out.println("allocator after the op tests: " + gpu.allocator().stats());
            gpu.close();
        }
    }

    double[] random(long n, double scale) { return rng.doubles(n, -scale, scale).toArray(); }

    static double tolerance(DType dt) { return dt == DType.BF16 ? 2e-2 : 1e-5; }

    /** The same activations on both sides: f32 on the CPU, dtype dt on the GPU (rounded to it first). */
    Tensor[] pair(DType dt, double[] data, int... shape) {
        if (dt == DType.BF16)
            for (int i = 0; i < data.length; i++) data[i] = Float.intBitsToFloat(HostTensor.toBf16((float) data[i]) << 16);
        return new Tensor[] {CPU.fromDoubles(data, DType.F32, shape), gpu.fromDoubles(data, dt, shape)};
    }

    /** f32 parameters on both sides. */
    Tensor[] pair(double[] data, int... shape) { return pair(DType.F32, data, shape); }

    static void close(Tensor cpu, Tensor cuda, String what) {
        close(CPU.toDoubles(cpu), cuda.backend().toDoubles(cuda), tolerance(cuda.dtype()), what + " " + cuda.dtype().configName());
    }

    static void close(double[] expected, double[] actual, double tolerance, String what) {
        assertEquals(expected.length, actual.length, what + " length");
        double diff = 0, ref = 0;
        for (int i = 0; i < expected.length; i++) {
            assertTrue(Double.isFinite(actual[i]), what + "[" + i + "] is " + actual[i]);
            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            ref += expected[i] * expected[i];
        }
        double rel = Math.sqrt(diff / Math.max(ref, 1e-300));
        assertTrue(rel < tolerance, what + ": relative error " + rel);
    }

    /** The reference is computed here in F64, not by the CPU backend, whose GEMM library the GPU bundle leaves out. */
    @ParameterizedTest
    @ValueSource(strings = {"f32", "bf16"})
    void matmulAllTransposesIntoEitherOutputDtype(String dtype) {
        DType dt = DType.parse(dtype);
        int m = 67, k = 45, n = 129;
        for (DType out : dt == DType.F32 ? new DType[] {DType.F32} : new DType[] {DType.BF16, DType.F32})
            for (boolean ta : new boolean[] {false, true})
                for (boolean tb : new boolean[] {false, true}) {
                    double[] a = random((long) m * k, 1), b = random((long) k * n, 1), c0 = random((long) m * n, 1);
                    Tensor ga = pair(dt, a, ta ? new int[] {k, m} : new int[] {m, k})[1];
                    Tensor gb = pair(dt, b, tb ? new int[] {n, k} : new int[] {k, n})[1];
                    Tensor gc = pair(out, c0, m, n)[1];
                    gpu.matmul(ga, ta, gb, tb, gc, 0.75, 0.5);
                    double[] expected = new double[m * n];
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++) {
                            double s = 0;
                            for (int p = 0; p < k; p++) s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
                            expected[i * n + j] = 0.75 * s + 0.5 * c0[i * n + j];
                        }
                    close(expected, gpu.toDoubles(gc), tolerance(out), "matmul " + dt.configName() + " ta=" + ta + " tb=" + tb + " -> " + out);
                }
    }

    /** A linear layer's forward, y = x·Wᵀ + beta·y + bias, with the bias in the GEMM's epilogue. */
    @ParameterizedTest
    @ValueSource(strings = {"f32", "bf16"})
    void matmulBiasAddsTheBiasAsTheProductIsStored(String dtype) {
        DType dt = DType.parse(dtype);
        int m = 67, k = 45;
        for (DType out : dt == DType.F32 ? new DType[] {DType.F32} : new DType[] {DType.BF16, DType.F32})
            for (int n : new int[] {129, 128})
                for (double beta : new double[] {0, 1}) {
                    double[] x = random((long) m * k, 1), w = random((long) n * k, 1), y0 = random((long) m * n, 1), bias = random(n, 1);
                    Tensor gy = pair(out, y0, m, n)[1], gb = pair(out, bias, n)[1];
                    gpu.matmulBias(pair(dt, x, m, k)[1], false, pair(dt, w, n, k)[1], true, gy, beta, gb);
                    double[] b = gpu.toDoubles(gb), expected = new double[m * n]; // the bias as the GPU holds it
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++) {
                            double s = 0;
                            for (int p = 0; p < k; p++) s += x[i * k + p] * w[j * k + p];
                            expected[i * n + j] = s + beta * y0[i * n + j] + b[j];
                        }
                    close(expected, gpu.toDoubles(gy), tolerance(out), "matmulBias " + dt.configName() + " -> " + out + " n=" + n + " beta=" + beta);
                }
        Tensor f32Bias = gpu.zeros(DType.F32, 8), y = gpu.zeros(DType.BF16, 4, 8), x = gpu.zeros(DType.BF16, 4, 16), w = gpu.zeros(DType.BF16, 8, 16);
        assertThrows(IllegalArgumentException.class, () -> gpu.matmulBias(x, false, w, true, y, 0, f32Bias), "the bias is in the output's dtype");
    }

    @ParameterizedTest
    @ValueSource(strings = {"f32", "bf16"})
    void elementwiseOps(String dtype) {
        DType dt = DType.parse(dtype);
        int n = 3 * 1000 + 7;
        Tensor[] tx = pair(dt, random(n, 3), n), ty = pair(dt, random(n, 3), n), td = pair(dt, random(n, 1), n);
        close(CPU.add(tx[0], ty[0]), gpu.add(tx[1], ty[1]), "add");
        close(CPU.geluForward(tx[0]), gpu.geluForward(tx[1]), "gelu");
        close(CPU.geluBackward(td[0], tx[0]), gpu.geluBackward(td[1], tx[1]), "gelu backward");
        close(CPU.swigluForward(tx[0], ty[0]), gpu.swigluForward(tx[1], ty[1]), "swiglu");
        Tensor[] sc = CPU.swigluBackward(td[0], tx[0], ty[0]), sg = gpu.swigluBackward(td[1], tx[1], ty[1]);
        close(sc[0], sg[0], "swiglu dgate");
        close(sc[1], sg[1], "swiglu dup");
        CPU.addInPlace(tx[0], ty[0]);
        gpu.addInPlace(tx[1], ty[1]);
        CPU.scale(tx[0], -0.3);
        gpu.scale(tx[1], -0.3);
        close(tx[0], tx[1], "addInPlace + scale");
    }

    @Test
    void sumOfSquaresAndConversions() {
        int n = 3 * 1000 + 7;
        Tensor[] x = pair(random(n, 3), n), y = pair(random(n, 3), n);
        double expected = CPU.sumOfSquares(java.util.List.of(x[0], y[0]));
        assertEquals(expected, gpu.sumOfSquares(java.util.List.of(x[1], y[1])), 1e-5 * expected, "sum of squares");
        try (Tensor bf = gpu.empty(DType.BF16, n); Tensor back = gpu.empty(DType.F32, n)) {
            gpu.copyInto(x[1], bf);
            gpu.copyInto(bf, back);
            double[] src = CPU.toDoubles(x[0]), round = gpu.toDoubles(back), host = gpu.toDoubles(bf);
            for (int i = 0; i < n; i++) {
                double expect = Float.intBitsToFloat(HostTensor.toBf16((float) src[i]) << 16);
                assertEquals(expect, round[i], 0, "f32 -> bf16 -> f32 rounds to nearest even at " + i);
                assertEquals(expect, host[i], 0, "bf16 download at " + i);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"f32", "bf16"})
    void biasAndColumnSums(String dtype) {
        DType dt = DType.parse(dtype);
        for (int rows : new int[] {37, 2049})
            for (int c : new int[] {301, 304}) { // 304: eight columns a thread, the last block partly outside
                Tensor[] x = pair(dt, random((long) rows * c, 1), rows, c), b = pair(random(c, 1), c), db = pair(random(c, 1), c);
                CPU.addBias(x[0], b[0]);
                gpu.addBias(x[1], b[1]);
                close(x[0], x[1], "addBias rows=" + rows);
                x[0] = CPU.fromDoubles(gpu.toDoubles(x[1]), DType.F32, rows, c); // sum what the GPU holds: f32 sums of bf16 values
                CPU.sumRowsAccumulate(x[0], db[0]);
                gpu.sumRowsAccumulate(x[1], db[1]);
                close(db[0], db[1], "sumRowsAccumulate rows=" + rows + " c=" + c);
            }
    }

    @ParameterizedTest
    @ValueSource(strings = {"f32", "bf16", "bf16 deterministic"})
    void embeddingForwardAndBackward(String variant) {
        DType dt = DType.parse(variant.split(" ")[0]);
        gpu.deterministic(variant.endsWith("deterministic"));
        try {
            embeddingMatchesTheCpu(dt);
        } finally {
            gpu.deterministic(false);
        }
    }

    private void embeddingMatchesTheCpu(DType dt) {
        int v = 53, c = 19, n = 41;
        int[] ids = rng.ints(n, 0, v).toArray();
        ids[3] = ids[7]; // a repeated id must accumulate
        Tensor[] table = pair(random((long) v * c, 1), v, c), dtable = pair(random((long) v * c, 1), v, c);
        Tensor[] dout = pair(dt, random((long) n * c, 1), n, c);
        Tensor ic = CPU.fromInts(ids, n), ig = gpu.fromInts(ids, n);
        close(CPU.embeddingForward(ic, table[0], DType.F32), gpu.embeddingForward(ig, table[1], dt), "embedding");
        CPU.embeddingBackward(ic, dout[0], dtable[0]);
        gpu.embeddingBackward(ig, dout[1], dtable[1]);
        close(dtable[0], dtable[1], "embedding backward");
    }

    @ParameterizedTest
    @ValueSource(strings = {"f32", "bf16"})
    void normsForwardAndBackward(String dtype) {
        DType dt = DType.parse(dtype);
        // Both norms move rows whose length is a multiple of 8 as vectors; up to 8192 a block spans a row and the
        // backward sums dw (and LayerNorm's db) over chunks of 16 rows as it goes (1037 rows: the last chunk partly filled)
        for (int c : new int[] {37, 769, 1531, 2048, 8200}) {
            int rows = c == 769 || c == 2048 ? 1037 : 13;
            Tensor[] x = pair(dt, random((long) rows * c, 2), rows, c), w = pair(random(c, 1), c), b = pair(random(c, 1), c);
            Tensor[] dout = pair(dt, random((long) rows * c, 1), rows, c);
            var lc = CPU.layerNormForward(x[0], w[0], b[0], 1e-5);
            var lg = gpu.layerNormForward(x[1], w[1], b[1], 1e-5);
            close(lc.out(), lg.out(), "layernorm c=" + c);
            Tensor[] dw = pair(random(c, 1), c), dbias = pair(random(c, 1), c);
            Tensor[] residual = pair(dt, random((long) rows * c, 1), rows, c);
            close(CPU.layerNormBackward(dout[0], x[0], w[0], lc.mean(), lc.rstd(), dw[0], dbias[0], null),
                    gpu.layerNormBackward(dout[1], x[1], w[1], lg.mean(), lg.rstd(), dw[1], dbias[1], null), "layernorm dx c=" + c);
            close(CPU.layerNormBackward(dout[0], x[0], w[0], lc.mean(), lc.rstd(), null, null, residual[0]),
                    gpu.layerNormBackward(dout[1], x[1], w[1], lg.mean(), lg.rstd(), null, null, residual[1]), "layernorm dx + residual c=" + c);
            close(dw[0], dw[1], "layernorm dw c=" + c);
            close(dbias[0], dbias[1], "layernorm db c=" + c);
            var rc = CPU.rmsNormForward(x[0], w[0], 1e-6);
            var rg = gpu.rmsNormForward(x[1], w[1], 1e-6);
            close(rc.out(), rg.out(), "rmsnorm c=" + c);
            close(CPU.rmsNormBackward(dout[0], x[0], w[0], rc.rstd(), dw[0], null), gpu.rmsNormBackward(dout[1], x[1], w[1], rg.rstd(), dw[1], null),
                    "rmsnorm dx");
            close(dw[0], dw[1], "rmsnorm dw c=" + c);
            close(CPU.rmsNormBackward(dout[0], x[0], w[0], rc.rstd(), null, residual[0]), gpu.rmsNormBackward(dout[1], x[1], w[1], rg.rstd(), null, residual[1]),
                    "rmsnorm dx + residual, frozen weight c=" + c);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"f32", "bf16"})
    void ropeForwardAndInverse(String dtype) {
        DType dt = DType.parse(dtype);
        int b = 2, t = 7, h = 3;
        for (int d : new int[] {10, 16, 64}) { // pairs one by one, or eight at a time where d is a multiple of 16
            Tensor[] x = pair(dt, random((long) b * t * h * d, 1), b, t, h, d);
            Tensor[] cos = pair(random(t * d / 2, 1), t, d / 2), sin = pair(random(t * d / 2, 1), t, d / 2);
            for (boolean inverse : new boolean[] {false, true})
                close(CPU.rope(x[0], cos[0], sin[0], inverse), gpu.rope(x[1], cos[1], sin[1], inverse), "rope d=" + d + " inverse=" + inverse);
        }
    }

    /**
     * Shapes (b, t, h, hkv, d): head sizes other than 64 take the reference kernels, 64 in bf16 the tensor cores;
     * a head size not a multiple of 8 takes delta's element-wise path.
     */
    @ParameterizedTest
    @ValueSource(strings = {"f32", "bf16", "bf16 mma.sync", "bf16 deterministic", "bf16 mma.sync deterministic"})
    void attentionForwardAndBackwardWithGroupedHeads(String variant) {
        DType dt = DType.parse(variant.split(" ")[0]);
        boolean wgmma = gpu.wgmmaAttention;
        gpu.wgmmaAttention &= !variant.contains("mma.sync"); // Hopper runs wgmma; this checks its mma.sync kernels too
        gpu.deterministic(variant.endsWith("deterministic")); // dq from per-key-block parts added in order
        try {
            attentionMatchesTheCpu(dt);
        } finally {
            gpu.wgmmaAttention = wgmma;
            gpu.deterministic(false);
        }
    }

    /** Deterministic, the sums that atomics would add in any order (many key blocks into each query's dq, many tokens into a row) repeat bit for bit. */
    @Test
    void deterministicSumsRepeatBitForBit() {
        int b = 2, t = 640, h = 4, hkv = 2, d = 64, n = 4096, rows = 50, c = 96;
        double scale = 1 / Math.sqrt(d);
        gpu.deterministic(true);
        try (Tensor q = gpu.fromDoubles(random((long) b * t * h * d, 1), DType.BF16, b, t, h, d); Tensor k = gpu.fromDoubles(random((long) b * t * hkv * d, 1), DType.BF16, b, t, hkv, d);
             Tensor v = gpu.fromDoubles(random((long) b * t * hkv * d, 1), DType.BF16, b, t, hkv, d); Tensor dout = gpu.fromDoubles(random((long) b * t * h * d, 1), DType.BF16, b, t, h, d);
             Tensor ids = gpu.fromInts(rng.ints(n, 0, rows).toArray(), n); Tensor dEmb = gpu.fromDoubles(random((long) n * c, 1), DType.BF16, n, c)) {
            var f = gpu.attentionForward(q, k, v, scale);
            double[][] dq = new double[2][], dtable = new double[2][];
            for (int run = 0; run < 2; run++) {
                Tensor[] g = gpu.attentionBackward(dout, q, k, v, f.out(), f.lse(), scale);
                dq[run] = gpu.toDoubles(g[0]);
                for (Tensor x : g) x.close();
                try (Tensor table = gpu.zeros(DType.F32, rows, c)) {
                    gpu.embeddingBackward(ids, dEmb, table);
                    dtable[run] = gpu.toDoubles(table);
                }
            }
            assertArrayEquals(dq[0], dq[1], "attention dq, run twice");
            assertArrayEquals(dtable[0], dtable[1], "embedding table gradient, run twice");
            assertTrue(java.util.Arrays.stream(dq[0]).anyMatch(x -> x != 0), "dq is not all zeros");
        } finally {
            gpu.deterministic(false);
        }
    }

    private void attentionMatchesTheCpu(DType dt) {
        for (int[] s : new int[][] {{2, 37, 6, 2, 24}, {1, 65, 4, 4, 64}, {2, 19, 8, 1, 128}, {2, 131, 4, 2, 64}, {1, 200, 2, 1, 64}, {2, 9, 3, 1, 20}}) {
            int b = s[0], t = s[1], h = s[2], hkv = s[3], d = s[4];
            double scale = 1 / Math.sqrt(d);
            Tensor[] q = pair(dt, random((long) b * t * h * d, 1), b, t, h, d), k = pair(dt, random((long) b * t * hkv * d, 1), b, t, hkv, d);
            Tensor[] v = pair(dt, random((long) b * t * hkv * d, 1), b, t, hkv, d), dout = pair(dt, random((long) b * t * h * d, 1), b, t, h, d);
            var fc = CPU.attentionForward(q[0], k[0], v[0], scale);
            var fg = gpu.attentionForward(q[1], k[1], v[1], scale);
            String what = "attention b=" + b + " t=" + t + " h=" + h + " hkv=" + hkv + " d=" + d;
            close(fc.out(), fg.out(), what + " out");
            close(fc.lse(), fg.lse(), what + " lse");
            // Backward from the GPU's own forward output, so only the backward's rounding is measured.
            Tensor outC = CPU.fromDoubles(gpu.toDoubles(fg.out()), DType.F32, q[0].shape());
            Tensor[] gc = CPU.attentionBackward(dout[0], q[0], k[0], v[0], outC, fc.lse(), scale);
            Tensor[] gg = gpu.attentionBackward(dout[1], q[1], k[1], v[1], fg.out(), fg.lse(), scale);
            close(gc[0], gg[0], what + " dq");
            close(gc[1], gg[1], what + " dk");
            close(gc[2], gg[2], what + " dv");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"f32", "bf16"})
    void crossEntropyInPlaceGradientAndIgnoredRows(String dtype) {
        DType dt = DType.parse(dtype);
        int n = 23;
        // 32000: rows move as vectors of eight; 50257 of 50304: GPT-2's vocabulary padded for the LM head, as vectors
        for (int[] vw : new int[][] {{50257, 50257}, {32000, 32000}, {50257, 50304}}) {
            int v = vw[0], w = vw[1];
            int[] targets = rng.ints(n, 0, v).toArray();
            targets[5] = -1;
            targets[6] = v - 1;
            Tensor[] lc = pair(dt, random((long) n * w, 4), n, w);
            Tensor tc = CPU.fromInts(targets, n), tg = gpu.fromInts(targets, n);
            Tensor lossC = CPU.crossEntropy(lc[0], v, tc, lc[0], 1.0 / 22), lossG = gpu.crossEntropy(lc[1], v, tg, lc[1], 1.0 / 22);
            close(CPU.toDoubles(lossC), gpu.toDoubles(lossG), dt == DType.BF16 ? 1e-4 : 1e-5, "cross-entropy loss " + dtype + " v=" + v + " of " + w);
            close(lc[0], lc[1], "cross-entropy gradient written over the logits, v=" + v + " of " + w);
        }
    }

    /** Vocabulary-parallel cross-entropy's two halves (a shard holding classes [640, 1280) of 1000) and sharded lookups. */
    @ParameterizedTest
    @ValueSource(strings = {"f32", "bf16"})
    void shardedCrossEntropyAndEmbeddingMatchTheCpu(String dtype) {
        DType dt = DType.parse(dtype);
        int n = 23, w = 640, first = 640, classes = 1000 - first;
        int[] targets = rng.ints(n, 0, 1000).toArray();
        targets[5] = -1;
        targets[6] = first;
        Tensor[] lc = pair(dt, random((long) n * w, 4), n, w);
        Tensor tc = CPU.fromInts(targets, n), tg = gpu.fromInts(targets, n);
        close(CPU.crossEntropyStats(lc[0], classes, first, tc), gpu.crossEntropyStats(lc[1], classes, first, tg), "cross-entropy stats " + dtype);
        // the other shard, classes [0, 640), then this one: the stats both halves see, in rank order
        double[] other = CPU.toDoubles(CPU.crossEntropyStats(CPU.fromDoubles(random((long) n * w, 4), DType.F32, n, w), w, 0, tc));
        double[] stats = java.util.Arrays.copyOf(other, 2 * n * 3);
        System.arraycopy(CPU.toDoubles(CPU.crossEntropyStats(lc[0], classes, first, tc)), 0, stats, n * 3, n * 3);
        Tensor[] st = pair(stats, 2, n, 3);
        Tensor lossC = CPU.crossEntropyFromStats(lc[0], classes, first, tc, st[0], lc[0], 1.0 / 22);
        Tensor lossG = gpu.crossEntropyFromStats(lc[1], classes, first, tg, st[1], lc[1], 1.0 / 22);
        close(CPU.toDoubles(lossC), gpu.toDoubles(lossG), dt == DType.BF16 ? 1e-4 : 1e-5, "sharded cross-entropy loss " + dtype);
        close(lc[0], lc[1], "sharded cross-entropy gradient " + dtype);

        int rows = 37, c = 65;
        int[] ids = rng.ints(n, 0, 3 * rows).toArray();
        Tensor[] table = pair(random((long) rows * c, 1), rows, c), dout = pair(dt, random((long) n * c, 1), n, c);
        Tensor ic = CPU.fromInts(ids, n), ig = gpu.fromInts(ids, n);
        close(CPU.embeddingForward(ic, table[0], DType.F32, rows), gpu.embeddingForward(ig, table[1], DType.F32, rows), "sharded lookup");
        Tensor gc = CPU.zeros(DType.F32, rows, c), gg = gpu.zeros(DType.F32, rows, c);
        CPU.embeddingBackward(ic, dout[0], gc, rows);
        gpu.embeddingBackward(ig, dout[1], gg, rows);
        close(gc, gg, "sharded lookup gradient " + dtype);
    }

    @Test
    void multiTensorAdamwWithClippingMatchesTheCpuUpdate() {
        int[] sizes = {1001, 70001, 7}; // the middle one spans three chunks of optimizer.cu
        java.util.List<Backend.AdamWSlot> cpuSlots = new java.util.ArrayList<>(), gpuSlots = new java.util.ArrayList<>();
        java.util.List<Tensor[]> all = new java.util.ArrayList<>();
        for (int i = 0; i < sizes.length; i++) {
            int n = sizes[i];
            Tensor[] p = pair(random(n, 1), n), g = pair(random(n, 1), n), m = pair(random(n, 0.1), n), v = pair(random(n, 0.1), n);
            for (Tensor t : new Tensor[] {v[0], v[1]}) t.backend().scale(t, 0); // second moments start at zero
            // the middle one also writes the bf16 copy GEMMs read
            cpuSlots.add(new Backend.AdamWSlot(p[0], g[0], m[0], v[0], i == 1 ? 0 : 0.1));
            gpuSlots.add(new Backend.AdamWSlot(p[1], g[1], m[1], v[1], i == 1 ? 0 : 0.1, i == 1 ? gpu.zeros(DType.BF16, n) : null));
            all.add(p);
            all.add(m);
            all.add(v);
        }
        var settings = new Backend.AdamWSettings(0.9, 0.95, 1e-8, 1.0); // the norm is ~160: clipping scales by ~1/160
        double[] schedule = {1e-3, 1 - Math.pow(0.9, 3), Math.sqrt(1 - Math.pow(0.95, 3))};
        for (Backend b : new Backend[] {CPU, gpu}) {
            var slots = b == CPU ? cpuSlots : gpuSlots;
            try (Tensor sched = b.fromDoubles(schedule, DType.F64, 3); Tensor sumSq = b.zeros(DType.F64, 1)) {
                b.sumOfSquares(slots.stream().map(Backend.AdamWSlot::grad).toList(), sumSq);
                b.adamw(slots, settings, sched, sumSq);
            }
        }
        for (Tensor[] pair : all) close(pair[0], pair[1], "adamw " + pair[0]);
        Tensor copy = gpuSlots.get(1).copy(), param = gpuSlots.get(1).param();
        double[] updated = gpu.toDoubles(param), rounded = new double[updated.length];
        for (int i = 0; i < updated.length; i++) rounded[i] = Float.intBitsToFloat(HostTensor.toBf16((float) updated[i]) << 16);
        assertArrayEquals(rounded, gpu.toDoubles(copy), 0, "the bf16 copy is the updated weight, rounded to nearest even");
    }

    @ParameterizedTest
    @ValueSource(strings = {"fp8_e4m3", "fp8_e5m2"})
    void fp8EncodingIsBitExactWithTheCpu(String name) {
        DType format = DType.parse(name);
        Fp8 f = Fp8.of(format);
        java.util.List<Double> values = new java.util.ArrayList<>(java.util.List.of(0.0, -0.0, f.max() * 1.1, -1e30, 1e30, Double.NaN));
        for (int code = 0; code < 0x7f; code++) {
            double lo = f.decode(code), hi = f.decode(code + 1);
            values.add(lo);
            values.add(-lo);
            if (!Double.isFinite(hi)) continue;
            double mid = (lo + hi) / 2; // exactly representable in f32 for both formats
            for (double v : new double[] {mid, Math.nextDown((float) mid), Math.nextUp((float) mid)}) {
                values.add(v);
                values.add(-v);
            }
        }
        for (int i = 0; i < 4000; i++) values.add(rng.nextGaussian() * Math.pow(2, rng.nextInt(-20, 18)));
        double[] x = values.stream().mapToDouble(Double::doubleValue).toArray();
        byte[] gpuCodes;
        try (Tensor t = gpu.fromDoubles(x, DType.F32, x.length)) {
            gpuCodes = gpu.encodeFp8(t, format);
        }
        int nans = 0;
        for (int i = 0; i < x.length; i++) {
            float v = (float) x[i];
            if (Float.isNaN(v)) {
                assertTrue(Float.isNaN(f.decode(gpuCodes[i])), "NaN stays NaN on the GPU");
                nans++;
                continue;
            }
            assertEquals(f.encode(v) & 0xff, gpuCodes[i] & 0xff, name + ": code of " + v);
        }
        System.out.printf("%s: %d values encoded bit-identically on CPU and GPU (%d NaN)%n", name, x.length, nans);
    }

    /**
     * Quantized values agree within one FP8 step (the GPU rotates in f32, the CPU in f64); scales to f32 rounding.
     * Sides that are multiples of 16 take one side of the tile kernels, with an f32 source or one scale per row too;
     * others the single kernels. Blocks over 256 take the cross-run pass first: one pass of 4, 16 or 64 runs of 128,
     * or two (16384 = 64·2·128).
     */
    @ParameterizedTest
    @ValueSource(strings = {"rows 0", "rows 128", "cols 0", "cols 128", "cols 32", "rows 128 f32", "rows 64 rowwise", "cols 128 f32 rowwise",
            "rows 64 264x192", "cols 32 96x264", "rows 512 32x1536", "rows 8192 16x8192", "rows 16384 8x16384", "cols 2048 2048x48", "cols 1024 3072x32"})
    void quantizeFp8MatchesTheCpu(String mode) {
        List<String> f = List.of(mode.split(" "));
        boolean transpose = f.get(0).equals("cols"), rowwise = f.contains("rowwise");
        int block = Integer.parseInt(f.get(1));
        String shape = f.stream().filter(s -> s.contains("x")).findFirst().orElse("256x384");
        int r = Integer.parseInt(shape.split("x")[0]), c = Integer.parseInt(shape.split("x")[1]);
        double[] data = random((long) r * c, 1);
        for (int row = 0; row < r; row++) data[row * c + 5] *= 100; // an outlier channel
        if (rowwise) for (int i = 0; i < data.length; i++) data[i] = Math.scalb(data[i], -((i / c) % 13)); // rows from 1 down to 2^-12
        Tensor[] x = pair(f.contains("f32") ? DType.F32 : DType.BF16, data, r, c);
        int rows = transpose ? c : r, k = transpose ? r : c;
        try (var want = new Backend.Fp8Operand(CPU.empty(DType.FP8_E4M3, rows, k), CPU.empty(DType.F32, rowwise ? rows : 1));
             var got = new Backend.Fp8Operand(gpu.empty(DType.FP8_E4M3, rows, k), gpu.empty(DType.F32, rowwise ? rows : 1))) {
            CPU.quantizeFp8(x[0], transpose, block, want);
            gpu.quantizeFp8(x[1], transpose, block, got);
            assertWithinOneStep(want, got, "quantize " + mode);
        }
    }

    /** The codes of one quantization on CPU and GPU: equal scales, and codes at most one step apart, in under 1%. */
    private void assertWithinOneStep(Backend.Fp8Operand want, Backend.Fp8Operand got, String what) {
        double[] sw = CPU.toDoubles(want.scaleInv()), sg = gpu.toDoubles(got.scaleInv());
        assertEquals(sw.length, sg.length, what + ": scales");
        for (int i = 0; i < sw.length; i++) assertEquals(sw[i], sg[i], 1e-5 * sw[i], what + ": scale " + i);
        double[] w = CPU.toDoubles(want.data()), g = gpu.toDoubles(got.data());
        double step = want.data().dtype() == DType.FP8_E5M2 ? 4 : 8; // 2 or 3 mantissa bits
        int differ = 0;
        for (int i = 0; i < w.length; i++) {
            if (w[i] == g[i]) continue;
            differ++;
            assertTrue(Math.abs(w[i] - g[i]) <= Math.max(Math.abs(w[i]), Math.abs(g[i])) / step + Math.scalb(1.0, -9),
                    what + ": element " + i + " differs by more than one step: " + w[i] + " vs " + g[i]);
        }
        assertTrue(differ < w.length / 100, what + ": " + differ + " of " + w.length + " codes differ");
        System.out.printf("%s: %d of %d codes one step apart%n", what, differ, w.length);
    }

    /**
     * Both operands from one read (fp8.cu's 128 x 128 tiles) equal the CPU's two quantizations: partial tiles,
     * different blocks per side, unrotated sides, an f32 source, blocks of 256 and over or sides not a multiple of 16 (the single kernels' fallback), and
     * one scale per row of each operand (rows of x, and its columns) with rows of very different sizes.
     */
    @ParameterizedTest
    @ValueSource(strings = {"bf16 384x320 64 128", "bf16 272x400 0 0", "bf16 256x512 128 0", "f32 256x384 128 128", "bf16 512x256 32 32",
            "bf16 512x512 256 128", "bf16 1024x512 512 1024", "bf16 264x192 64 0", "f32 272x400 0 0", "bf16 384x320 64 128 rowwise", "bf16 272x400 0 0 rowwise", "f32 256x384 128 32 rowwise"})
    void quantizeBothMatchesTheCpu(String mode) {
        String[] f = mode.split(" ");
        DType dt = DType.valueOf(f[0].toUpperCase());
        int r = Integer.parseInt(f[1].split("x")[0]), c = Integer.parseInt(f[1].split("x")[1]);
        int rowsBlock = Integer.parseInt(f[2]), colsBlock = Integer.parseInt(f[3]);
        boolean rowwise = mode.endsWith("rowwise");
        double[] data = random((long) r * c, 1);
        for (int row = 0; row < r; row++) data[row * c + 5] *= 100; // an outlier channel
        if (rowwise) for (int i = 0; i < data.length; i++) data[i] = Math.scalb(data[i], -((i / c) % 13)); // rows from 1 down to 2^-12
        Tensor[] x = pair(dt, data, r, c);
        var ops = new java.util.ArrayList<Backend.Fp8Operand>();
        for (Backend b : java.util.List.of(CPU, gpu)) {
            ops.add(new Backend.Fp8Operand(b.empty(DType.FP8_E4M3, r, c), b.empty(DType.F32, rowwise ? r : 1)));
            ops.add(new Backend.Fp8Operand(b.empty(DType.FP8_E5M2, c, r), b.empty(DType.F32, rowwise ? c : 1)));
        }
        CPU.quantizeFp8Both(x[0], new Backend.Fp8Target(ops.get(0), rowsBlock), new Backend.Fp8Target(ops.get(1), colsBlock));
        gpu.quantizeFp8Both(x[1], new Backend.Fp8Target(ops.get(2), rowsBlock), new Backend.Fp8Target(ops.get(3), colsBlock));
        assertWithinOneStep(ops.get(0), ops.get(2), "both " + mode + ", rows");
        assertWithinOneStep(ops.get(1), ops.get(3), "both " + mode + ", cols");
        ops.forEach(Backend.Fp8Operand::close);
    }

    /** Delayed scaling of both operands in one read: each side's scale from its own history, its amax recorded there. */
    @Test
    void quantizeBothDelayedMatchesTheCpu() {
        int r = 256, c = 384;
        Tensor[] x = pair(DType.BF16, random((long) r * c, 1), r, c);
        double[] pastRows = {0, 1.5, 2.5}, pastCols = {0, 0.5, 0.75};
        var ops = new java.util.ArrayList<Backend.Fp8Operand>();
        var histories = new java.util.ArrayList<Tensor>();
        Backend[] backends = {CPU, gpu}; // x[i] lives on backends[i]
        for (int i = 0; i < 2; i++) {
            Backend b = backends[i];
            Backend.Fp8Operand rows = new Backend.Fp8Operand(b.empty(DType.FP8_E5M2, r, c), b.empty(DType.F32, 1));
            Backend.Fp8Operand cols = new Backend.Fp8Operand(b.empty(DType.FP8_E5M2, c, r), b.empty(DType.F32, 1));
            Tensor hr = b.fromDoubles(pastRows, DType.F32, 3), hc = b.fromDoubles(pastCols, DType.F32, 3);
            b.quantizeFp8Both(x[i], new Backend.Fp8Target(rows, 128, hr, true), new Backend.Fp8Target(cols, 64, hc, true));
            ops.addAll(java.util.List.of(rows, cols));
            histories.addAll(java.util.List.of(hr, hc));
        }
        assertEquals(2.5 / 57344, gpu.toDoubles(ops.get(2).scaleInv())[0], 1e-6 * 2.5 / 57344, "rows scale from the rows history");
        assertEquals(0.75 / 57344, gpu.toDoubles(ops.get(3).scaleInv())[0], 1e-6 * 0.75 / 57344, "cols scale from the cols history");
        close(ops.get(0).data(), ops.get(2).data(), "delayed rows codes");
        close(ops.get(1).data(), ops.get(3).data(), "delayed cols codes");
        close(CPU.toDoubles(histories.get(0)), gpu.toDoubles(histories.get(2)), 1e-6, "rows amax recorded");
        close(CPU.toDoubles(histories.get(1)), gpu.toDoubles(histories.get(3)), 1e-6, "cols amax recorded");
        ops.forEach(Backend.Fp8Operand::close);
    }

    /** Delayed scaling on the GPU: scale from the history's older slots, this tensor's amax recorded in slot 0. */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void delayedScalingMatchesTheCpu(boolean transpose) {
        int r = 256, c = 128;
        Tensor[] x = pair(DType.BF16, random((long) r * c, 1), r, c);
        double[] past = {0, 3.5, 2.0, 0.25};
        Tensor[] history = {CPU.fromDoubles(past, DType.F32, 4), gpu.fromDoubles(past, DType.F32, 4)};
        try (var want = CPU.quantizeFp8(x[0], DType.FP8_E5M2, transpose, 128, history[0], true);
             var got = gpu.quantizeFp8(x[1], DType.FP8_E5M2, transpose, 128, history[1], true)) {
            assertEquals(3.5 / 57344, gpu.toDoubles(got.scaleInv())[0], 1e-6 * 3.5 / 57344, "scale from the history's largest older amax");
            close(CPU.toDoubles(history[0]), gpu.toDoubles(history[1]), 1e-6, "amax recorded in slot 0");
            close(want.data(), got.data(), "delayed-scaled codes");
        }
        gpu.rollAmaxHistories(java.util.List.of(history[1]));
        // the GPU's amax is f32 arithmetic, the CPU's f64 rounded once: one f32 ulp apart at most
        close(new double[] {0, CPU.toDoubles(history[0])[0], 3.5, 2.0}, gpu.toDoubles(history[1]), 1e-6, "rolled history");
    }

    /** One launch rolls histories of any length (a warp takes 32 entries at a time), as the CPU does. */
    @Test
    void amaxHistoriesOfEveryLengthRollLikeTheCpus() {
        int[] lengths = {2, 16, 32, 33, 70, 1024};
        List<Tensor> cpu = new java.util.ArrayList<>(), cuda = new java.util.ArrayList<>();
        for (int n : lengths) {
            double[] h = random(n, 5);
            cpu.add(CPU.fromDoubles(h, DType.F32, n));
            cuda.add(gpu.fromDoubles(h, DType.F32, n));
        }
        CPU.rollAmaxHistories(cpu);
        gpu.rollAmaxHistories(cuda);
        for (int i = 0; i < lengths.length; i++) {
            double[] want = CPU.toDoubles(cpu.get(i));
            assertEquals(0, want[0], "slot 0 starts again at zero");
            assertArrayEquals(want, gpu.toDoubles(cuda.get(i)), 0, "history of " + lengths[i] + " rolled");
        }
    }

    /** A NaN in x shows in the recorded amax (so its layer can be named); a NaN in the history does not set the scale. */
    @ParameterizedTest
    @ValueSource(ints = {0, 256})
    void nonFiniteAmaxIsRecordedAndIgnoredForScaling(int block) {
        int r = 256, c = 256;
        double[] data = random((long) r * c, 1);
        data[1000] = Double.NaN;
        Tensor x = gpu.fromDoubles(data, DType.BF16, r, c);
        Tensor hr = gpu.fromDoubles(new double[] {0, Double.NaN, 2.0}, DType.F32, 3), hc = gpu.fromDoubles(new double[] {0, 1.0, Double.POSITIVE_INFINITY}, DType.F32, 3);
        try (var rows = new Backend.Fp8Operand(gpu.empty(DType.FP8_E4M3, r, c), gpu.empty(DType.F32, 1));
             var cols = new Backend.Fp8Operand(gpu.empty(DType.FP8_E4M3, c, r), gpu.empty(DType.F32, 1))) {
            gpu.quantizeFp8Both(x, new Backend.Fp8Target(rows, block, hr, true), new Backend.Fp8Target(cols, block, hc, true));
            assertTrue(Double.isNaN(gpu.toDoubles(hr)[0]) && Double.isNaN(gpu.toDoubles(hc)[0]), "the NaN is in both recorded amaxes");
            assertEquals(2.0 / 448, gpu.toDoubles(rows.scaleInv())[0], 1e-6, "rows scale from the finite history entry");
            assertEquals(1.0 / 448, gpu.toDoubles(cols.scaleInv())[0], 1e-6, "cols scale from the finite history entry");
        }
    }

    /** The same codes and scales (one per tensor, or one per row of each operand: cuBLASLt's outer-vector scaling). */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void fp8GemmMatchesTheCpuOnTheSameCodes(boolean rowwise) {
        int m = 96, n = 80, k = 256;
        double[] da = random((long) m * k, 1), db = random((long) n * k, 1);
        for (int i = 0; i < da.length; i++) da[i] = Math.scalb(da[i], -((i / k) % 9)); // rows of a from 1 down to 2^-8
        Tensor[] a = pair(DType.BF16, da, m, k), b = pair(DType.BF16, db, n, k);
        Backend.Fp8Operand[] qa = operands(DType.FP8_E4M3, m, k, rowwise), qb = operands(DType.FP8_E5M2, n, k, rowwise); // {cpu, gpu}
        CPU.quantizeFp8(a[0], false, 0, qa[0]);
        CPU.quantizeFp8(b[0], false, 0, qb[0]);
        // the GPU gets exactly the CPU's codes and scales, so the two GEMMs multiply the same numbers
        for (Backend.Fp8Operand[] q : List.of(qa, qb)) {
            Fp8 f = Fp8.of(q[1].data().dtype());
            double[] values = CPU.toDoubles(q[0].data());
            byte[] codes = new byte[values.length];
            for (int i = 0; i < codes.length; i++) codes[i] = f.encode(values[i]);
            gpu.uploadFp8Codes(codes, q[1].data());
            gpu.copyInto(gpu.fromDoubles(CPU.toDoubles(q[0].scaleInv()), DType.F32, (int) q[0].scaleInv().numel()), q[1].scaleInv());
        }
        try (Tensor c = CPU.zeros(DType.F32, m, n); Tensor cg = gpu.zeros(DType.F32, m, n)) {
            CPU.matmulFp8(qa[0], qb[0], c, 0);
            gpu.matmulFp8(qa[1], qb[1], cg, 0);
            // Same inputs, so only accumulation differs: Hopper's FP8 tensor cores add partial sums with fewer bits
            // than f32 between cuBLASLt's promotions (measured 9e-5 here, against the CPU's f64 sums).
            close(CPU.toDoubles(c), gpu.toDoubles(cg), 1e-3, "fp8 gemm e4m3 x e5m2 -> f32" + (rowwise ? ", per-row scales" : ""));
        }
        for (Backend.Fp8Operand op : List.of(qa[0], qa[1], qb[0], qb[1])) op.close();
    }

    /** An uninitialised operand (rows,k) on the CPU and one on the GPU, with one scale or one per row. */
    private Backend.Fp8Operand[] operands(DType format, int rows, int k, boolean perRow) {
        Backend[] backends = {CPU, gpu};
        Backend.Fp8Operand[] ops = new Backend.Fp8Operand[2];
        for (int i = 0; i < 2; i++) ops[i] = new Backend.Fp8Operand(backends[i].empty(format, rows, k), backends[i].empty(DType.F32, perRow ? rows : 1));
        return ops;
    }

    @Test
    void capturedGraphReplaysOnNewInputsAndKeepsItsMemory() {
        Tensor x = gpu.fromDoubles(new double[] {1, 2, 3}, DType.F32, 3), y = gpu.zeros(DType.F32, 3);
        Backend.Graph graph = gpu.capture(() -> {
            try (Tensor twice = gpu.add(x, x)) {   // a temporary allocated and freed inside the graph
                gpu.addInPlace(y, twice);
            }
        });
        assertArrayEquals(new double[] {0, 0, 0}, gpu.toDoubles(y), "capturing runs nothing");
        graph.replay();
        gpu.copyInto(gpu.fromDoubles(new double[] {10, 20, 30}, DType.F32, 3), x);
        graph.replay();
        assertArrayEquals(new double[] {22, 44, 66}, gpu.toDoubles(y), "each replay reads x as it is then");
        Tensor z = gpu.fromDoubles(new double[] {7, 7, 7}, DType.F32, 3); // must not get the graph's temporary
        graph.replay();
        assertArrayEquals(new double[] {42, 84, 126}, gpu.toDoubles(y));
        assertArrayEquals(new double[] {7, 7, 7}, gpu.toDoubles(z), "a replay wrote into memory allocated outside the graph");
        graph.close();
        for (Tensor t : new Tensor[] {x, y, z}) t.close();
    }

    @Test
    void allocatorReusesFreedBlocks() {
        long before = gpu.allocator().stats().mallocCalls();
        for (int i = 0; i < 50; i++) gpu.zeros(DType.F32, 1000, 1000).close();
        assertTrue(gpu.allocator().stats().mallocCalls() - before <= 1, "freed blocks are reused: " + gpu.allocator().stats());
        assertArrayEquals(new double[] {0, 0}, gpu.toDoubles(gpu.zeros(DType.F32, 2)));
    }
}
