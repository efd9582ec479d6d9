package dev.strata.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The ops generation adds, against the CPU: writing a KV cache's new positions, and attention over the cache. */
@Tag("gpu")
class CudaGenerationOpsTest {
    static final CpuBackend CPU = CpuBackend.INSTANCE;
    static final String UNAVAILABLE = CudaBackend.unavailableReason();
    static CudaBackend gpu;
    final SplittableRandom rng = new SplittableRandom(5);

    @BeforeEach
    void open() {
        assumeTrue(UNAVAILABLE == null, "no GPU here, CUDA test skipped: " + UNAVAILABLE);
        if (gpu == null) gpu = CudaBackend.open(0);
    }

    @AfterAll
    static void close() { if (gpu != null) gpu.close(); }

    /** Values rounded to dt first, so both sides start from the same numbers. */
    double[] values(DType dt, long n) {
        double[] v = rng.doubles(n, -1, 1).toArray();
        if (dt == DType.BF16) for (int i = 0; i < v.length; i++) v[i] = Float.intBitsToFloat(HostTensor.toBf16((float) v[i]) << 16);
        return v;
    }

    @ParameterizedTest
    @ValueSource(strings = {"f32", "bf16"})
    void cachedAttentionAndCacheWritesMatchTheCpu(String dtype) {
        DType dt = DType.parse(dtype);
        // b, tq, h, hkv, d, tmax, length: one new token, a prefill, grouped heads, head sizes 64 and 128 and odd
        for (int[] s : new int[][] {{1, 1, 12, 12, 64, 128, 77}, {2, 9, 8, 2, 64, 64, 9}, {1, 3, 4, 1, 128, 300, 300}, {2, 1, 6, 3, 20, 40, 1}}) {
            int b = s[0], tq = s[1], h = s[2], hkv = s[3], d = s[4], tmax = s[5], length = s[6];
            double[] q = values(dt, (long) b * tq * h * d), k = values(dt, (long) b * tmax * hkv * d), v = values(dt, (long) b * tmax * hkv * d);
            double[] fresh = values(dt, (long) b * tq * hkv * d);
            String what = dtype + " b=" + b + " tq=" + tq + " h=" + h + " hkv=" + hkv + " d=" + d + " length=" + length + " of " + tmax;
            try (Tensor qc = CPU.fromDoubles(q, dt == DType.BF16 ? DType.F32 : dt, b, tq, h, d); Tensor qg = gpu.fromDoubles(q, dt, b, tq, h, d);
                 Tensor kc = CPU.fromDoubles(k, DType.F32, b, tmax, hkv, d); Tensor kg = gpu.fromDoubles(k, dt, b, tmax, hkv, d);
                 Tensor vc = CPU.fromDoubles(v, DType.F32, b, tmax, hkv, d); Tensor vg = gpu.fromDoubles(v, dt, b, tmax, hkv, d);
                 Tensor nc = CPU.fromDoubles(fresh, DType.F32, b, tq, hkv, d); Tensor ng = gpu.fromDoubles(fresh, dt, b, tq, hkv, d)) {
                int at = length - tq;
                CPU.copyIntoPositions(nc, kc, at);
                gpu.copyIntoPositions(ng, kg, at);
                assertArrayEquals(CPU.toDoubles(kc), gpu.toDoubles(kg), 0.0, what + ": the cache after the write");
                try (Tensor oc = CPU.attentionCached(qc, kc, vc, length, 1 / Math.sqrt(d)); Tensor og = gpu.attentionCached(qg, kg, vg, length, 1 / Math.sqrt(d))) {
                    double[] e = CPU.toDoubles(oc), a = gpu.toDoubles(og);
                    double diff = 0, ref = 0;
                    for (int i = 0; i < e.length; i++) {
                        diff += (a[i] - e[i]) * (a[i] - e[i]);
                        ref += e[i] * e[i];
                    }
                    double rel = Math.sqrt(diff / ref);
                    assertTrue(rel < (dt == DType.BF16 ? 1e-2 : 1e-5), what + ": relative error " + rel);
                }
            }
        }
    }
}
