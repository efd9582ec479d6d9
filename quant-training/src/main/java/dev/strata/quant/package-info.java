/** Hadamard-rotated FP8 training (HALO): transforms, FP8 codecs, scaling recipes and Fp8Linear. Not built yet. */
package dev.strata.quant;
