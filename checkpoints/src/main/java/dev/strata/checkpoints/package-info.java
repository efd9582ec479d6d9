/**
 * Tensors on disk: the safetensors format, Hugging Face model directories, and Strata's sharded training checkpoints
 * (safetensors + JSON manifest) written through {@link dev.strata.checkpoints.Storage}, committed by rename.
 */
package dev.strata.checkpoints;
