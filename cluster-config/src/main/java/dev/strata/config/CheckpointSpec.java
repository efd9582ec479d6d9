package dev.strata.config;

/**
 * Checkpoint every N steps (0: only at the end), keeping the last few and milestones every keepEvery steps (0:
 * none); written in the background (async) or while training waits; into dir ("": the run directory's
 * checkpoints/), which may be an hdfs:// URI; a run starts from resumeFrom, a checkpoint of any run ("": none, or
 * the run's own latest when resumed).
 */
public record CheckpointSpec(int every, int keepLast, int keepEvery, boolean async, String dir, String resumeFrom) {
    /** Where the run's checkpoints go. */
    public String dirFor(String runDir) { return dir.isEmpty() ? java.nio.file.Path.of(runDir, "checkpoints").toString() : dir; }
}
