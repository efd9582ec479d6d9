/**
 * Tensor parallelism, Megatron-LM's layout applied from outside the model: column- and row-parallel linears and the
 * plan, keyed by layer names, that puts them behind {@code Linear.Maker}; vocabulary and sequence parallelism.
 */
package dev.strata.parallel.tensor;
