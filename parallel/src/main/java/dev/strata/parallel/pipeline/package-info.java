/**
 * Pipeline parallelism: stages as layer ranges, the schedules that run micro-batches through them (GPipe, 1F1B), the
 * runner that moves activations and their gradients point-to-point, and the sync of what stages share.
 */
package dev.strata.parallel.pipeline;
