/**
 * What layers are built from, below any model: {@link dev.strata.runtime.nn.Parameter} (a weight, its gradient and
 * its low-precision copies) and the {@link dev.strata.runtime.nn.Linear} interface that dense, FP8, tensor-parallel
 * and LoRA layers implement, so the modules that provide them need not know the model.
 */
package dev.strata.runtime.nn;
