/**
 * Parallelism applied from outside the model: the device mesh, each rank's process groups and data parallelism;
 * collectives live in {@code comm}, tensor parallelism in {@code tensor}, pipeline stages in {@code pipeline}.
 */
package dev.strata.parallel;
