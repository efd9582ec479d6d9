package dev.strata.config;

/** Checkpoint every N steps (0: only at the end), keeping the last few. */
public record CheckpointSpec(int every, int keepLast) {}
