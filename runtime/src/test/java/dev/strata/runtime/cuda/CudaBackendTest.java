package dev.strata.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Every CUDA op against the CPU backend on random inputs of awkward shapes (odd sizes, not multiples of any tile),
 * forward and backward, F32 within 1e-5 relative (‖gpu − cpu‖ / ‖cpu‖).
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

    Tensor[] pair(double[] data, int... shape) {
        return new Tensor[] {CPU.fromDoubles(data, DType.F32, shape), gpu.fromDoubles(data, DType.F32, shape)};
    }

    static void close(Tensor cpu, Tensor cuda, String what) {
        close(CPU.toDoubles(cpu), cuda.backend().toDoubles(cuda), 1e-5, what);
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

    @Test
    void matmulAllTransposes() {
        int m = 67, k = 45, n = 129;
        for (boolean ta : new boolean[] {false, true})
            for (boolean tb : new boolean[] {false, true}) {
                double[] a = random((long) m * k, 1), b = random((long) k * n, 1), c0 = random((long) m * n, 1);
                Tensor ga = gpu.fromDoubles(a, DType.F32, ta ? new int[] {k, m} : new int[] {m, k});
                Tensor gb = gpu.fromDoubles(b, DType.F32, tb ? new int[] {n, k} : new int[] {k, n});
                Tensor gc = gpu.fromDoubles(c0, DType.F32, m, n);
                gpu.matmul(ga, ta, gb, tb, gc, 0.75, 0.5);
                double[] expected = new double[m * n];
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double s = 0;
                        for (int p = 0; p < k; p++) s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
                        expected[i * n + j] = 0.75 * s + 0.5 * c0[i * n + j];
                    }
                close(expected, gpu.toDoubles(gc), 1e-5, "matmul ta=" + ta + " tb=" + tb);
            }
    }

    @Test
    void elementwiseOps() {
        int n = 3 * 1000 + 7;
        double[] x = random(n, 3), y = random(n, 3), d = random(n, 1);
        Tensor[] tx = pair(x, n), ty = pair(y, n), td = pair(d, n);
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
        assertEquals(CPU.sumOfSquares(java.util.List.of(tx[0], ty[0])), gpu.sumOfSquares(java.util.List.of(tx[1], ty[1])),
                1e-5 * CPU.sumOfSquares(java.util.List.of(tx[0], ty[0])), "sum of squares");
    }

    @Test
    void biasAndRowSums() {
        int rows = 37, c = 301;
        Tensor[] x = pair(random((long) rows * c, 1), rows, c), b = pair(random(c, 1), c), db = pair(random(c, 1), c);
        CPU.addBias(x[0], b[0]);
        gpu.addBias(x[1], b[1]);
        close(x[0], x[1], "addBias");
        CPU.sumRowsAccumulate(x[0], db[0]);
        gpu.sumRowsAccumulate(x[1], db[1]);
        close(db[0], db[1], "sumRowsAccumulate");
    }

    @Test
    void embeddingForwardAndBackward() {
        int v = 53, c = 19, n = 41;
        int[] ids = rng.ints(n, 0, v).toArray();
        ids[3] = ids[7]; // a repeated id must accumulate
        Tensor[] table = pair(random((long) v * c, 1), v, c), dtable = pair(random((long) v * c, 1), v, c), dout = pair(random((long) n * c, 1), n, c);
        Tensor ic = CPU.fromInts(ids, n), ig = gpu.fromInts(ids, n);
        close(CPU.embeddingForward(ic, table[0]), gpu.embeddingForward(ig, table[1]), "embedding");
        CPU.embeddingBackward(ic, dout[0], dtable[0]);
        gpu.embeddingBackward(ig, dout[1], dtable[1]);
        close(dtable[0], dtable[1], "embedding backward");
    }

    @Test
    void normsForwardAndBackward() {
        for (int c : new int[] {37, 769, 1531}) {
            int rows = 13;
            Tensor[] x = pair(random((long) rows * c, 2), rows, c), w = pair(random(c, 1), c), b = pair(random(c, 1), c);
            Tensor[] dout = pair(random((long) rows * c, 1), rows, c);
            var lc = CPU.layerNormForward(x[0], w[0], b[0], 1e-5);
            var lg = gpu.layerNormForward(x[1], w[1], b[1], 1e-5);
            close(lc.out(), lg.out(), "layernorm c=" + c);
            Tensor[] dw = pair(random(c, 1), c), dbias = pair(random(c, 1), c);
            close(CPU.layerNormBackward(dout[0], x[0], w[0], lc.mean(), lc.rstd(), dw[0], dbias[0]),
                    gpu.layerNormBackward(dout[1], x[1], w[1], lg.mean(), lg.rstd(), dw[1], dbias[1]), "layernorm dx c=" + c);
            close(dw[0], dw[1], "layernorm dw c=" + c);
            close(dbias[0], dbias[1], "layernorm db c=" + c);
            var rc = CPU.rmsNormForward(x[0], w[0], 1e-6);
            var rg = gpu.rmsNormForward(x[1], w[1], 1e-6);
            close(rc.out(), rg.out(), "rmsnorm c=" + c);
            close(CPU.rmsNormBackward(dout[0], x[0], w[0], rc.rstd(), dw[0]), gpu.rmsNormBackward(dout[1], x[1], w[1], rg.rstd(), dw[1]), "rmsnorm dx");
            close(dw[0], dw[1], "rmsnorm dw c=" + c);
        }
    }

    @Test
    void ropeForwardAndInverse() {
        int b = 2, t = 7, h = 3, d = 10;
        Tensor[] x = pair(random((long) b * t * h * d, 1), b, t, h, d), cos = pair(random(t * d / 2, 1), t, d / 2), sin = pair(random(t * d / 2, 1), t, d / 2);
        for (boolean inverse : new boolean[] {false, true})
            close(CPU.rope(x[0], cos[0], sin[0], inverse), gpu.rope(x[1], cos[1], sin[1], inverse), "rope inverse=" + inverse);
    }

    @Test
    void attentionForwardAndBackwardWithGroupedHeads() {
        for (int[] s : new int[][] {{2, 37, 6, 2, 24}, {1, 65, 4, 4, 64}, {2, 19, 8, 1, 128}}) {
            int b = s[0], t = s[1], h = s[2], hkv = s[3], d = s[4];
            double scale = 1 / Math.sqrt(d);
            Tensor[] q = pair(random((long) b * t * h * d, 1), b, t, h, d), k = pair(random((long) b * t * hkv * d, 1), b, t, hkv, d);
            Tensor[] v = pair(random((long) b * t * hkv * d, 1), b, t, hkv, d), dout = pair(random((long) b * t * h * d, 1), b, t, h, d);
            var fc = CPU.attentionForward(q[0], k[0], v[0], scale);
            var fg = gpu.attentionForward(q[1], k[1], v[1], scale);
            String what = "attention b=" + b + " t=" + t + " h=" + h + " hkv=" + hkv + " d=" + d;
            close(fc.out(), fg.out(), what + " out");
            close(fc.lse(), fg.lse(), what + " lse");
            Tensor[] gc = CPU.attentionBackward(dout[0], q[0], k[0], v[0], fc.out(), fc.lse(), scale);
            Tensor[] gg = gpu.attentionBackward(dout[1], q[1], k[1], v[1], fg.out(), fg.lse(), scale);
            close(gc[0], gg[0], what + " dq");
            close(gc[1], gg[1], what + " dk");
            close(gc[2], gg[2], what + " dv");
        }
    }

    @Test
    void crossEntropyInPlaceGradientAndIgnoredRows() {
        int n = 23, v = 50257;
        double[] logits = random((long) n * v, 4);
        int[] targets = rng.ints(n, 0, v).toArray();
        targets[5] = -1;
        Tensor[] lc = pair(logits, n, v);
        Tensor tc = CPU.fromInts(targets, n), tg = gpu.fromInts(targets, n);
        Tensor lossC = CPU.crossEntropy(lc[0], tc, lc[0], 1.0 / 22), lossG = gpu.crossEntropy(lc[1], tg, lc[1], 1.0 / 22);
        close(lossC, lossG, "cross-entropy loss");
        close(lc[0], lc[1], "cross-entropy gradient written over the logits");
    }

    @Test
    void adamwMatchesTheCpuUpdate() {
        int n = 1001;
        Tensor[] p = pair(random(n, 1), n), g = pair(random(n, 1), n), m = pair(random(n, 0.1), n), v = pair(random(n, 0.1), n);
        for (Tensor t : new Tensor[] {v[0], v[1]}) t.backend().scale(t, 0); // second moments start at zero
        var hp = new Backend.AdamWStep(1e-3, 0.9, 0.95, 1e-8, 0.1, 3);
        CPU.adamw(p[0], g[0], m[0], v[0], hp, 0.7);
        gpu.adamw(p[1], g[1], m[1], v[1], hp, 0.7);
        close(p[0], p[1], "adamw param");
        close(m[0], m[1], "adamw m");
        close(v[0], v[1], "adamw v");
    }

    @Test
    void allocatorReusesFreedBlocks() {
        long before = gpu.allocator().stats().mallocCalls();
        for (int i = 0; i < 50; i++) gpu.zeros(DType.F32, 1000, 1000).close();
        assertTrue(gpu.allocator().stats().mallocCalls() - before <= 1, "freed blocks are reused: " + gpu.allocator().stats());
        assertArrayEquals(new double[] {0, 0}, gpu.toDoubles(gpu.zeros(DType.F32, 2)));
    }
}
