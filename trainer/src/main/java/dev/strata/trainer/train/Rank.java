package dev.strata.trainer.train;

import dev.strata.parallel.DataParallelSync;
import dev.strata.runtime.Backend;
import dev.strata.runtime.nn.GradientSync;

/**
 * Which data-parallel rank a training loop is, its sync with the others (null on a single rank), and the backend it
 * computes on when the rank opened it already (a GPU rank, whose NCCL communicator shares it; null: the job's).
 */
record Rank(int index, DataParallelSync dataParallel, Backend backend) {
    static final Rank SINGLE = new Rank(0, null, null);

    Rank(int index, DataParallelSync dataParallel) { this(index, dataParallel, null); }

    GradientSync sync() { return dataParallel == null ? GradientSync.NONE : dataParallel; }

    /** Whether the optimizer state is sharded over the ranks (ZeRO-1 or 2). */
    boolean shardedState() { return dataParallel != null && dataParallel.zero() > 0; }
}
