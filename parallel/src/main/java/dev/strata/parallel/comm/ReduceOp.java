package dev.strata.parallel.comm;

/** How a reduction combines the ranks' values; AVG is SUM divided by the group's size. */
public enum ReduceOp { SUM, AVG, MAX }
