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
        asyncRoundTrip(CpuBackend.INSTANCE, DType.F64);
    }

    /**
     * Through a host buffer and back with the asynchronous copies: the bytes that land are the tensor's as the compute
     * stream had written it just before the call, and compute enqueued after waitFor sees what came back.
     */
    static void asyncRoundTrip(Backend b, DType dtype) {
        double[] v = new SplittableRandom(3).doubles(1 << 20, -2, 2).toArray();
        try (Tensor t = b.fromDoubles(v, dtype, v.length); Tensor back = b.zeros(dtype, v.length);
             Backend.HostBuffer host = b.hostBuffer((long) v.length * dtype.byteSize())) {
            b.scale(t, 2);                                   // compute stream, before the copy
            try (Backend.Event out = b.copyToHost(t, host)) {
                out.await();
            }
            HostTensor landed = new HostTensor(dtype, new int[] {v.length}, host.bytes().duplicate().clear());
            double[] want = HostTensor.ofDoubles(v, dtype, v.length).toDoubles();
            for (int i = 0; i < want.length; i++) want[i] *= 2;
            assertArrayEquals(want, landed.toDoubles(), 0.0, "the bytes as of the call, on " + b.device());
            try (Backend.Event in = b.copyFromHost(host, back)) {
                b.waitFor(in);
                b.scale(back, 0.5);                          // compute, after the copy landed
                assertArrayEquals(HostTensor.ofDoubles(v, dtype, v.length).toDoubles(), b.toDoubles(back), 0.0, "back on " + b.device());
            }
        }
    }

    @Test
    @Tag("gpu")
    void cudaRoundTripsF32AndBf16() {
        String unavailable = CudaBackend.unavailableReason();
        assumeTrue(unavailable == null, "no GPU here, CUDA test skipped: " + unavailable);
        try (CudaBackend gpu = CudaBackend.open(0)) {
            roundTrips(gpu, DType.F32);
            roundTrips(gpu, DType.BF16);
            asyncRoundTrip(gpu, DType.F32);
            asyncRoundTrip(gpu, DType.BF16);
        }
    }
}
