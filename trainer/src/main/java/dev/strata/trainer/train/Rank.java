package dev.strata.trainer.train;

import dev.strata.parallel.DataParallelSync;
import dev.strata.runtime.nn.GradientSync;

/** Which data-parallel rank a training loop is, and its sync with the others (null on a single rank). */
record Rank(int index, DataParallelSync dataParallel) {
    static final Rank SINGLE = new Rank(0, null);

    GradientSync sync() { return dataParallel == null ? GradientSync.NONE : dataParallel; }

    /** Whether the optimizer state is sharded over the ranks (ZeRO-1 or 2). */
    boolean shardedState() { return dataParallel != null && dataParallel.zero() > 0; }
}
