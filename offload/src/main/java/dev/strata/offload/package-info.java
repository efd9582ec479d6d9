/**
 * Optimizer state off the device: pinned host memory and NVMe files, updated in subgroups by the CPU and the GPU in
 * turn (Deep Optimizer States), through the runtime's {@code Optimizer} seam.
 */
package dev.strata.offload;
