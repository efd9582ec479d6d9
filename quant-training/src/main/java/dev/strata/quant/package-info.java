/**
 * Hadamard-rotated FP8 training (HALO): {@link dev.strata.quant.Fp8Linear}, whose three GEMMs run in FP8 with the
 * rotations a {@link dev.strata.quant.Rotation} level asks for, and {@link dev.strata.quant.Fp8Plan}, which decides
 * from outside the model which linears get it. The codecs, transforms and kernels are backend ops in runtime.
 */
package dev.strata.quant;
