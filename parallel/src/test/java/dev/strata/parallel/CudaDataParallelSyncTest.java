package dev.strata.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.parallel.comm.InProcessCommunicator;
import dev.strata.parallel.comm.NcclCommunicator;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.runtime.nn.Parameter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Buckets on the GPU: gradients packed into flat device tensors, reduced over NCCL (world size 1 here, its unique
 * id handed round by a rendezvous group) and unpacked, come back as they went, at every ZeRO level; owners' values
 * travel back the same way.
 */
@Tag("gpu")
class CudaDataParallelSyncTest {
    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2})
    void bucketsTravelOverNccl(int zero) {
        String unavailable = CudaBackend.unavailableReason();
        assumeTrue(unavailable == null, "no GPU here, bucket test skipped: " + unavailable);
        var rendezvous = InProcessCommunicator.group("rendezvous", 1, Duration.ofSeconds(10)).get(0);
        try (CudaBackend gpu = CudaBackend.open(0); NcclCommunicator nccl = NcclCommunicator.join(gpu, rendezvous, "dp", Duration.ofSeconds(30))) {
            int[] sizes = {300, 7, 1000, 64, 5, 2048};
            List<Parameter> ps = new ArrayList<>();
            List<double[]> grads = new ArrayList<>();
            for (int i = 0; i < sizes.length; i++) {
                double[] g = new double[sizes[i]], v = new double[sizes[i]];
                for (int e = 0; e < g.length; e++) {
                    g[e] = 0.5 + i + e * 0.125;
                    v[e] = -1 - i - e * 0.25;
                }
                Parameter p = new Parameter("p" + i, Parameter.Kind.LINEAR_WEIGHT, gpu.fromDoubles(v, DType.F32, sizes[i]));
                try (Tensor t = gpu.fromDoubles(g, DType.F32, sizes[i])) {
                    gpu.copyInto(t, p.grad());
                }
                ps.add(p);
                grads.add(g);
            }
            var sync = new DataParallelSync(nccl, zero, 4096);
            sync.plan(ps);
            try (Tensor loss = gpu.fromDoubles(new double[] {2.5}, DType.F32, 1)) {
                sync.startMicroBatch(true);
                for (int i = 0; i < ps.size(); i += 2) sync.gradientsDone(ps.subList(i, i + 2));
                sync.reduce(ps, loss);
                assertEquals(2.5, gpu.toDoubles(loss)[0]);
            }
            for (int i = 0; i < ps.size(); i++) assertArrayEquals(grads.get(i), gpu.toDoubles(ps.get(i).grad()), "p" + i + "'s gradient, zero = " + zero);
            sync.gatherParameters(ps);
            for (int i = 0; i < ps.size(); i++) assertEquals(-1 - i, gpu.toDoubles(ps.get(i).value())[0], "p" + i + "'s value");
            System.out.printf("zero=%d: %d buckets of %s bytes over NCCL%n", zero, sync.bucketSizes().size(), sync.bucketSizes());
        } finally {
            rendezvous.close();
        }
    }
}
