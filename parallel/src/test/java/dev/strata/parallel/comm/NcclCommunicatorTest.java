package dev.strata.parallel.comm;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cuda.CudaBackend;
import java.time.Duration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * NCCL at world size 1 (one GPU here: NCCL refuses two ranks on one device) passes the contract; its collectives run
 * on their own stream, ordered after the compute stream's work and before what follows an await.
 */
@Tag("gpu")
class NcclCommunicatorTest {
    @ParameterizedTest
    @ValueSource(strings = {"f32", "bf16"})
    void passesTheContractAtWorldSizeOne(String dtype) {
        String unavailable = CudaBackend.unavailableReason();
        assumeTrue(unavailable == null, "no GPU here, NCCL test skipped: " + unavailable);
        try (CudaBackend gpu = CudaBackend.open(0);
             NcclCommunicator c = new NcclCommunicator(gpu, "dp", NcclCommunicator.uniqueId(), 0, 1, Duration.ofSeconds(30))) {
            for (String name : CommunicatorContract.CASES) CommunicatorContract.run(name, c, gpu, DType.parse(dtype));
            // Ordering against compute: a value written on the compute stream just before the call is what is reduced,
            // and an op enqueued after await sees the result.
            double[] big = new double[1 << 20];
            java.util.Arrays.fill(big, 1.5);
            try (Tensor t = gpu.fromDoubles(big, DType.F32, big.length)) {
                gpu.scale(t, 2);                       // compute stream: 3.0
                c.allReduce(t, ReduceOp.MAX).await();  // comm stream, after the scale
                gpu.scale(t, 2);                       // compute stream, after the all-reduce: 6.0
                double[] out = gpu.toDoubles(t);
                assertTrue(out[0] == 6 && out[big.length - 1] == 6, "ordered against compute: " + out[0]);
            }
        }
    }
}
