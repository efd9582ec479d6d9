package dev.strata.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.cuda.CudaBackend;
import java.nio.ByteBuffer;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Tensors move between host bytes and a backend bit for bit, in their own dtype, with no detour through double. */
class TransfersTest {
    static void roundTrips(Backend b, DType dtype) {
        double[] v = new SplittableRandom(2).doubles(1001, -3, 3).toArray();
        v[0] = Double.NaN;
        v[1] = -0.0;
        v[2] = Double.POSITIVE_INFINITY;
        HostTensor h = HostTensor.ofDoubles(v, dtype, 7, 11, 13);
        try (Tensor t = h.to(b, dtype)) {
            assertEquals(dtype, t.dtype());
            ByteBuffer back = b.toBytes(t);
            byte[] x = new byte[h.data().remaining()], y = new byte[back.remaining()];
            h.data().duplicate().get(x);
            back.duplicate().get(y);
            assertArrayEquals(x, y, dtype + " on " + b.device());
            assertArrayEquals(h.toDoubles(), HostTensor.of(t, dtype).toDoubles(), 0.0);
        }
    }

    @Test
    void cpuRoundTripsF32AndF64() {
        roundTrips(CpuBackend.INSTANCE, DType.F32);
        roundTrips(CpuBackend.INSTANCE, DType.F64);
    }

    @Test
    @Tag("gpu")
    void cudaRoundTripsF32AndBf16() {
        String unavailable = CudaBackend.unavailableReason();
        assumeTrue(unavailable == null, "no GPU here, CUDA test skipped: " + unavailable);
        try (CudaBackend gpu = CudaBackend.open(0)) {
            roundTrips(gpu, DType.F32);
            roundTrips(gpu, DType.BF16);
        }
    }
}
