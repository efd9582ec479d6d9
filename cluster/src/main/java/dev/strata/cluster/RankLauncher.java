package dev.strata.cluster;

import java.nio.file.Path;

/** How a node starts one rank process (the trainer's worker entry point, given by the CLI that starts the agent). */
@FunctionalInterface
public interface RankLauncher {
    /**
     * The rank's process, not started: jobFile holds the job's JSON; slot is which of the node's slots it takes (its
     * GPU, where the node has GPUs); hosts[r] is rank r's host; ports: each group's rendezvous port; resume: from
     * the run's latest checkpoint.
     */
    ProcessBuilder process(Path jobFile, String source, int rank, int slot, String[] hosts, int[] ports, boolean resume);

    /** Where the rank's output goes, under the agent's work directory by default. */
    default Path log(Path workDir, String jobId, int attempt, int rank) { return workDir.resolve(jobId).resolve("attempt-" + attempt).resolve("rank-" + rank + ".log"); }
}
