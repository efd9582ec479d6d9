package dev.strata.runtime.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class CpuBackendTest {

    /** The loop GPU nodes use without ND4J gives ND4J's products. */
    @ParameterizedTest
    @CsvSource({"false, false", "true, false", "false, true", "true, true"})
    void plainGemmMatchesNd4j(boolean transA, boolean transB) {
        int m = 37, n = 23, k = 41;
        SplittableRandom rng = new SplittableRandom(2);
        CpuBuffer.F64 a = new CpuBuffer.F64(rng.doubles(m * k, -1, 1).toArray()), b = new CpuBuffer.F64(rng.doubles(k * n, -1, 1).toArray());
        double[] init = rng.doubles(m * n, -1, 1).toArray();
        CpuBuffer.F64 nd4j = new CpuBuffer.F64(init.clone()), plain = new CpuBuffer.F64(init.clone());
        Nd4jGemm.gemm(a, transA, b, transB, nd4j, m, n, k, 0.7, 0.3);
        CpuBackend.plainGemm(a, transA, b, transB, plain, m, n, k, 0.7, 0.3);
        assertArrayEquals(nd4j.a(), plain.a(), 1e-12);
    }

    static final CpuBackend CPU = CpuBackend.INSTANCE;

    @ParameterizedTest
    @CsvSource({"F64, false, false", "F64, true, false", "F64, false, true", "F64, true, true", "F32, true, true", "F32, false, false"})
    void matmulMatchesTheDefinitionOnOddShapes(DType dtype, boolean ta, boolean tb) {
        int m = 37, k = 19, n = 53;
        SplittableRandom rng = new SplittableRandom(m + (ta ? 1 : 0) + (tb ? 2 : 0));
        double[] a = rng.doubles((long) m * k, -1, 1).toArray(), b = rng.doubles((long) k * n, -1, 1).toArray();
        double[] c0 = rng.doubles((long) m * n, -1, 1).toArray();
        Tensor at = CPU.fromDoubles(a, dtype, ta ? new int[] {k, m} : new int[] {m, k});
        Tensor bt = CPU.fromDoubles(b, dtype, tb ? new int[] {n, k} : new int[] {k, n});
        Tensor c = CPU.fromDoubles(c0, dtype, m, n);
        CPU.matmul(at, ta, bt, tb, c, 0.5, 2.0);
        double[] got = CPU.toDoubles(c);
        double[] aq = CPU.toDoubles(at), bq = CPU.toDoubles(bt);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) s += (ta ? aq[p * m + i] : aq[i * k + p]) * (tb ? bq[j * k + p] : bq[p * n + j]);
                double expected = 0.5 * s + 2.0 * (dtype == DType.F32 ? (float) c0[i * n + j] : c0[i * n + j]);
                assertEquals(expected, got[i * n + j], dtype == DType.F64 ? 1e-12 : 1e-5, "c[" + i + "," + j + "]");
            }
    }

    @ParameterizedTest
    @CsvSource({"F64", "F32"})
    void crossEntropyGivesLossAndSoftmaxGradientAndSkipsIgnoredRows(DType dtype) {
        int n = 3, v = 37; // 37 is not a multiple of any SIMD width
        double[] logits = new SplittableRandom(4).doubles((long) n * v, -3, 3).toArray();
        Tensor lt = CPU.fromDoubles(logits, dtype, n, v), d = CPU.zeros(dtype, n, v);
        double[] loss = CPU.toDoubles(CPU.crossEntropy(lt, CPU.fromInts(new int[] {5, -1, 36}, n), d, 0.5));
        double[] grad = CPU.toDoubles(d);
        int[] targets = {5, -1, 36};
        for (int r = 0; r < n; r++) {
            if (targets[r] < 0) {
                assertEquals(0, loss[r]);
                for (int j = 0; j < v; j++) assertEquals(0, grad[r * v + j]);
                continue;
            }
            double sum = 0;
            for (int j = 0; j < v; j++) sum += Math.exp(logits[r * v + j]);
            assertEquals(Math.log(sum) - logits[r * v + targets[r]], loss[r], dtype == DType.F64 ? 1e-12 : 1e-5);
            for (int j = 0; j < v; j++)
                assertEquals(0.5 * (Math.exp(logits[r * v + j]) / sum - (j == targets[r] ? 1 : 0)), grad[r * v + j],
                        dtype == DType.F64 ? 1e-12 : 1e-6);
        }
    }

    /**
     * Vocabulary-parallel cross-entropy: 48 padded columns (37 real) cut into 4 shards of 12, the last with one real
     * class; each shard's stats, gathered, give every shard the whole loss and its columns of the whole gradient.
     */
    @ParameterizedTest
    @CsvSource({"F64", "F32"})
    void shardedCrossEntropyEqualsTheWhole(DType dtype) {
        int n = 5, v = 37, w = 48, shards = 4, cols = w / shards;
        double[] logits = new SplittableRandom(9).doubles((long) n * w, -4, 4).toArray();
        int[] targets = {5, -1, 36, 12, 0};
        Tensor whole = CPU.fromDoubles(logits, dtype, n, w), tg = CPU.fromInts(targets, n);
        double[] loss = CPU.toDoubles(CPU.crossEntropy(whole, v, tg, whole, 0.5)), grad = CPU.toDoubles(whole);
        Tensor[] parts = new Tensor[shards];
        double[] stats = new double[shards * n * 3];
        for (int k = 0; k < shards; k++) {
            double[] part = new double[n * cols];
            for (int r = 0; r < n; r++) System.arraycopy(logits, r * w + k * cols, part, r * cols, cols);
            parts[k] = CPU.fromDoubles(part, dtype, n, cols);
            int classes = Math.max(0, Math.min(cols, v - k * cols));
            System.arraycopy(CPU.toDoubles(CPU.crossEntropyStats(parts[k], classes, k * cols, tg)), 0, stats, k * n * 3, n * 3);
        }
        for (int k = 0; k < shards; k++) {
            int classes = Math.max(0, Math.min(cols, v - k * cols));
            Tensor all = CPU.fromDoubles(stats, dtype, shards, n, 3);
            assertArrayEquals(loss, CPU.toDoubles(CPU.crossEntropyFromStats(parts[k], classes, k * cols, tg, all, parts[k], 0.5)),
                    dtype == DType.F64 ? 1e-12 : 1e-5, "loss from shard " + k);
            double[] mine = CPU.toDoubles(parts[k]);
            for (int r = 0; r < n; r++)
                for (int j = 0; j < cols; j++)
                    assertEquals(grad[r * w + k * cols + j], mine[r * cols + j], dtype == DType.F64 ? 1e-12 : 1e-6, "shard " + k + " row " + r + " column " + j);
        }
    }

    /** Shards of a table: their lookups sum to the whole lookup, and each takes the gradient of its own rows. */
    @org.junit.jupiter.api.Test
    void shardedEmbeddingLookupsSumToTheWhole() {
        int rows = 12, c = 3, shards = 3, per = rows / shards;
        double[] table = new SplittableRandom(2).doubles(rows * c, -1, 1).toArray();
        int[] ids = {0, 11, 4, 4, 7};
        Tensor idt = CPU.fromInts(ids, ids.length);
        double[] whole = CPU.toDoubles(CPU.embeddingForward(idt, CPU.fromDoubles(table, DType.F64, rows, c), DType.F64));
        double[] dout = new SplittableRandom(3).doubles(ids.length * c, -1, 1).toArray();
        Tensor wholeGrad = CPU.zeros(DType.F64, rows, c);
        CPU.embeddingBackward(idt, CPU.fromDoubles(dout, DType.F64, ids.length, c), wholeGrad);
        double[] sum = new double[whole.length], expectedGrad = CPU.toDoubles(wholeGrad);
        for (int k = 0; k < shards; k++) {
            Tensor shard = CPU.fromDoubles(java.util.Arrays.copyOfRange(table, k * per * c, (k + 1) * per * c), DType.F64, per, c);
            double[] got = CPU.toDoubles(CPU.embeddingForward(idt, shard, DType.F64, k * per));
            for (int i = 0; i < sum.length; i++) sum[i] += got[i];
            Tensor grad = CPU.zeros(DType.F64, per, c);
            CPU.embeddingBackward(idt, CPU.fromDoubles(dout, DType.F64, ids.length, c), grad, k * per);
            assertArrayEquals(java.util.Arrays.copyOfRange(expectedGrad, k * per * c, (k + 1) * per * c), CPU.toDoubles(grad), 0, "shard " + k);
        }
        assertArrayEquals(whole, sum, 0);
    }

    @ParameterizedTest
    @CsvSource({"F64", "F32"})
    void crossEntropyOverPaddedLogitsIgnoresThePadding(DType dtype) {
        int n = 3, v = 37, w = 48; // the vocabulary padded from 37 to 48 columns, which hold large values
        double[] padded = new SplittableRandom(4).doubles((long) n * w, -3, 3).toArray(), real = new double[n * v];
        for (int r = 0; r < n; r++) {
            System.arraycopy(padded, r * w, real, r * v, v);
            for (int j = v; j < w; j++) padded[r * w + j] = 50;
        }
        int[] targets = {5, -1, 36};
        Tensor pt = CPU.fromDoubles(padded, dtype, n, w), rt = CPU.fromDoubles(real, dtype, n, v);
        double[] lossPadded = CPU.toDoubles(CPU.crossEntropy(pt, v, CPU.fromInts(targets, n), pt, 0.5));
        double[] lossReal = CPU.toDoubles(CPU.crossEntropy(rt, CPU.fromInts(targets, n), rt, 0.5));
        assertArrayEquals(lossReal, lossPadded, 0);
        double[] gp = CPU.toDoubles(pt), gr = CPU.toDoubles(rt);
        for (int r = 0; r < n; r++)
            for (int j = 0; j < w; j++) assertEquals(j < v ? gr[r * v + j] : 0, gp[r * w + j], 0, "row " + r + " column " + j);
        assertThrows(IndexOutOfBoundsException.class, () -> CPU.crossEntropy(pt, v, CPU.fromInts(new int[] {v, 0, 0}, n), null, 0));
    }

    @ParameterizedTest
    @CsvSource({"F64", "F32"})
    void ropeInverseUndoesRope(DType dtype) {
        int b = 2, t = 5, h = 3, d = 6;
        double[] x = new SplittableRandom(9).doubles((long) b * t * h * d, -1, 1).toArray();
        double[] cos = new double[t * d / 2], sin = new double[t * d / 2];
        for (int i = 0; i < cos.length; i++) {
            cos[i] = Math.cos(0.3 * i);
            sin[i] = Math.sin(0.3 * i);
        }
        Tensor xt = CPU.fromDoubles(x, dtype, b, t, h, d);
        Tensor c = CPU.fromDoubles(cos, dtype, t, d / 2), s = CPU.fromDoubles(sin, dtype, t, d / 2);
        Tensor back = CPU.rope(CPU.rope(xt, c, s, false), c, s, true);
        assertArrayEquals(CPU.toDoubles(xt), CPU.toDoubles(back), dtype == DType.F64 ? 1e-12 : 1e-5);
    }

    @ParameterizedTest
    @CsvSource({"F64"})
    void badShapesAreRefused(DType dtype) {
        var e = assertThrows(IllegalArgumentException.class,
                () -> CPU.matmul(CPU.zeros(dtype, 2, 3), false, CPU.zeros(dtype, 4, 5), false, CPU.zeros(dtype, 2, 5), 1, 0));
        assertEquals(true, e.getMessage().contains("do not agree"), e.getMessage());
        assertThrows(IndexOutOfBoundsException.class, () -> CPU.embeddingForward(CPU.fromInts(new int[] {7}, 1), CPU.zeros(dtype, 5, 2), dtype));
        assertThrows(UnsupportedOperationException.class, () -> CPU.zeros(DType.BF16, 2));
    }

    /** An AdamW slot's copy (here f32 of an f64 parameter) holds the updated value, converted, after the update. */
    @Test
    void adamwWritesTheSlotsCopy() {
        SplittableRandom rng = new SplittableRandom(5);
        int n = 100;
        Tensor p = CPU.fromDoubles(rng.doubles(n, -1, 1).toArray(), DType.F64, n), g = CPU.fromDoubles(rng.doubles(n, -1, 1).toArray(), DType.F64, n);
        Tensor m = CPU.zeros(DType.F64, n), v = CPU.zeros(DType.F64, n), copy = CPU.zeros(DType.F32, n);
        double before = CPU.toDoubles(p)[0];
        CPU.adamw(List.of(new Backend.AdamWSlot(p, g, m, v, 0.1, copy)),
                new Backend.AdamWSettings(0.9, 0.95, 1e-8, 0),
                CPU.fromDoubles(new double[] {1e-2, 0.1, Math.sqrt(0.05)}, DType.F64, 3), CPU.fromDoubles(new double[] {1}, DType.F64, 1));
        double[] updated = CPU.toDoubles(p), copied = CPU.toDoubles(copy);
        assertTrue(updated[0] != before, "the update moved the parameter");
        for (int i = 0; i < n; i++) assertEquals((float) updated[i], copied[i], 0, "copy[" + i + "]");
    }
}
