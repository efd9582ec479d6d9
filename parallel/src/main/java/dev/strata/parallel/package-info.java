/**
 * Parallelism applied from outside the model: the device mesh and its process groups ({@link dev.strata.parallel.DeviceMesh});
 * collectives live in {@code comm}. Tensor, pipeline and data parallel layouts and the Pekko control plane build on these.
 */
package dev.strata.parallel;
