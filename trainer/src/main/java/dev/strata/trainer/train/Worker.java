package dev.strata.trainer.train;

import dev.strata.config.JobConfig;
import dev.strata.parallel.DataParallelSync;
import dev.strata.parallel.DeviceMesh;
import dev.strata.parallel.MeshComms;
import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.NcclCommunicator;
import dev.strata.runtime.cuda.CudaBackend;
import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;

/**
 * One rank of a multi-process job: joins its groups through Pekko (each group's first rank listening at the group's
 * port), then trains. A GPU rank (the launcher left it one visible GPU) turns each group into an NCCL communicator,
 * whose unique id the group's first rank makes and the Pekko group hands round; tensors then travel over NCCL and
 * Pekko carries only the rendezvous.
 */
public final class Worker {
    private Worker() {}

    public static void run(JobConfig job, PrintStream out, RunDirectory.Mode mode, long exitAfter, boolean allowChanges, int rank,
                           List<String> hosts, List<Integer> ports) throws IOException {
        var p = job.parallel();
        DeviceMesh mesh = new DeviceMesh(p.dp(), p.pp(), p.tp());
        List<Communicator> controls = new ArrayList<>(); // the Pekko groups under NCCL, closed last
        CudaBackend gpu = Models.onGpu(job.backend()) ? CudaBackend.open(0) : null;
        try (MeshComms comms = MeshComms.join(mesh, rank, hosts, ports, p.timeout(), (pekko, group) -> {
            if (gpu == null) return pekko;
            controls.add(pekko);
            return NcclCommunicator.join(gpu, pekko, group.name(), p.timeout());
        })) {
            if (gpu != null)
                out.printf("rank %d of %d: %s over NCCL on %s (CUDA_VISIBLE_DEVICES=%s)%n", rank, mesh.size(), groups(comms), gpu.device(),
                        System.getenv("CUDA_VISIBLE_DEVICES"));
            DataParallelSync dp = comms.dp() == null ? null : new DataParallelSync(comms.dp(), p.zero(), p.bucketBytes());
            new Trainer(job, out).run(mode, exitAfter, allowChanges, new Rank(rank, mesh, dp, comms.tp(), p.sequenceParallel(), comms.pp(), gpu));
        } finally {
            controls.forEach(Communicator::close);
            if (gpu != null) gpu.close();
        }
    }

    private static String groups(MeshComms c) {
        List<String> names = new ArrayList<>();
        if (c.dp() != null) names.add("gradients (" + c.dp().name() + ")");
        if (c.tp() != null) names.add("activations (" + c.tp().name() + ")");
        if (c.pp() != null) names.add("stage boundaries (" + c.pp().name() + ")");
        return names.isEmpty() ? "nothing to exchange" : String.join(" and ", names);
    }
}
