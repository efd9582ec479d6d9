/** Optimizer-state offload to pinned host memory and NVMe with interleaved GPU/CPU updates. Not built yet. */
package dev.strata.offload;
