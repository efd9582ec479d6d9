package dev.strata.config;

/** Where the shards written by {@code strata data prepare} are. */
public record DataSpec(String dir) {}
