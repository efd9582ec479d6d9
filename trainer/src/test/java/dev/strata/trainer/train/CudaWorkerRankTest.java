package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.config.JobConfig;
import dev.strata.runtime.cuda.CudaBackend;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The launcher's GPU path on one GPU: a worker JVM that the launcher gave its GPU, which joins the rendezvous over
 * Pekko, gets NCCL's unique id through it and reduces over NCCL, trains as one process does; asking for more GPUs
 * than the host shows is one line before anything starts.
 */
@Tag("gpu")
class CudaWorkerRankTest {
    static final String UNAVAILABLE = CudaBackend.unavailableReason();

    @Test
    void aGpuWorkerOverNcclTrainsAsOneProcessDoes(@TempDir Path runs) throws Exception {
        assumeTrue(UNAVAILABLE == null, "no GPU here, GPU worker test skipped: " + UNAVAILABLE);
        Path data = runs.resolve("data");
        TrainerTest.writeData(data);
        JobConfig single = job(runs.resolve("single"), data), worker = job(runs.resolve("worker"), data);
        new Trainer(single, TrainerTest.quiet()).run(RunDirectory.Mode.FRESH, 0);
        var out = new java.io.ByteArrayOutputStream();
        Trainer.Result r = ProcessRanks.run(worker, new java.io.PrintStream(out, true), RunDirectory.Mode.FRESH, 0, false);
        assertEquals(8, r.step(), "the worker trained every step: " + out);
        String log = Files.readString(runs.resolve("worker/logs/rank-0.log"));
        assertTrue(log.contains("over NCCL"), "rank 0 reduced over NCCL: " + log);
        List<Double> a = TrainerTest.losses(runs.resolve("single")), b = TrainerTest.losses(runs.resolve("worker"));
        assertEquals(a.size(), b.size());
        // f32 on the GPU, not bit-identical: the embedding backward and attention's dq add with atomics.
        for (int i = 0; i < a.size(); i++) assertEquals(a.get(i), b.get(i), 1e-4 * a.get(i), "step " + (i + 1) + ": " + a + " vs " + b);
        System.out.printf("GPU worker rank over Pekko + NCCL: losses %s, one process %s%n", b, a);

        // the GPU's PCI address as sysfs names it, where the launcher reads the GPU's NUMA node
        String bus = CudaBackend.pciBusId(0);
        assertTrue(Files.isDirectory(Path.of("/sys/bus/pci/devices", bus)), "no sysfs entry for the GPU's bus id " + bus);
        NumaBinding numa = NumaBinding.here();
        System.out.printf("GPU 0 at %s: NUMA node %d of %d, numactl %s, rank prefix %s%n", bus, numa.nodeOf(bus), numa.nodes(), numa.numactl(), numa.prefix(bus));

        int visible = CudaBackend.deviceCount();
        JobConfig tooMany = worker.withOverrides("parallel.dp = " + (visible + 1));
        var e = assertThrows(IllegalArgumentException.class,
                () -> ProcessRanks.run(tooMany, TrainerTest.quiet(), RunDirectory.Mode.FRESH, 0, false));
        assertTrue(e.getMessage().contains("needs " + (visible + 1) + " GPUs, one per rank, but this host shows " + visible), e.getMessage());
    }

    private static JobConfig job(Path runDir, Path data) {
        return TrainerTest.job(runDir, data, "llama", 8).withOverrides("""
                backend = cuda
                dtype = f32
                eval.every = 0
                parallel { zero = 2, timeout = 60s }
                """);
    }
}
