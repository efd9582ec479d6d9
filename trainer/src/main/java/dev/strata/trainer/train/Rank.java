package dev.strata.trainer.train;

import dev.strata.parallel.DataParallelSync;
import dev.strata.parallel.DeviceMesh;
import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.pipeline.PipelineSync;
import dev.strata.parallel.tensor.TensorParallelSync;
import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.Backend;
import dev.strata.runtime.nn.GradientSync;

/**
 * Which rank of the mesh a training loop is; its data-parallel sync with the replicas holding the same slices (null:
 * no other replica) and its tensor-parallel group (null: tp = 1), whose ranks shard the rows under sequence
 * parallelism; its pipeline group (null: pp = 1); and the backend it computes on when the rank
 * opened it already (a GPU rank, whose NCCL communicators share it; null: the job's).
 */
record Rank(int index, DeviceMesh mesh, DataParallelSync dataParallel, Communicator tensorParallel, boolean sequenceParallel,
            Communicator pipeline, Backend backend) {
    static final Rank SINGLE = new Rank(0, new DeviceMesh(1, 1, 1), null, null, false, null, null);

    /** The step's sync: data-parallel inside tensor-parallel inside pipeline; tied: this stage's copy of a weight the first and last stages share. */
    GradientSync sync(Parameter tied) {
        GradientSync dp = dataParallel == null ? GradientSync.NONE : dataParallel;
        GradientSync tp = tensorParallel == null ? dp : new TensorParallelSync(dp, tensorParallel, sequenceParallel);
        return pipeline == null ? tp : new PipelineSync(tp, pipeline, tied, dataParallel == null ? t -> {} : dataParallel::sumOverReplicas);
    }

    /** This rank's pipeline stage (0 without pipeline parallelism). */
    int stage() { return mesh.coordinates(index).pp(); }

    /** The replica this rank belongs to: which rows of each global batch it reads. */
    int replica() { return mesh.coordinates(index).dp(); }

    /** Rank 0 writes the run directory, prints and checkpoints. */
    boolean writes() { return index == 0; }

    /** The first replica's ranks evaluate and sample, together when tp splits the model over them. */
    boolean evaluates() { return replica() == 0; }

    /** Whether the optimizer state is sharded over the replicas (ZeRO-1 or 2). */
    boolean shardedState() { return dataParallel != null && dataParallel.zero() > 0; }
}
