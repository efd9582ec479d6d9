package dev.strata.config;

import java.time.Duration;

/**
 * How the job is spread over ranks: data-parallel replicas, the ZeRO level (0: replicated optimizer state; 1: sharded
 * over dp; 2: gradients reduced to their shard's owner too), how ranks are started, how long a collective may wait.
 */
public record ParallelSpec(int dp, int zero, String launcher, Duration timeout) {
    static ParallelSpec from(Fields f) {
        var p = new ParallelSpec(f.positive("parallel.dp"), f.nonNegative("parallel.zero"), f.oneOf("parallel.launcher", "threads", "processes"),
                f.duration("parallel.timeout"));
        f.require(p.zero <= 2, "parallel.zero must be 0, 1 or 2, got " + p.zero);
        f.require(p.timeout.toMillis() >= 100, "parallel.timeout must be at least 100 ms, got " + p.timeout.toMillis() + " ms");
        return p;
    }
}
