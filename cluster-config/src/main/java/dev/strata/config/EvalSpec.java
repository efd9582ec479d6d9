package dev.strata.config;

/** Validation every N steps (0: only at the end) over a fixed number of batches. */
public record EvalSpec(int every, int batches) {}
