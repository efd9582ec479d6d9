package dev.strata.trainer.model;

import dev.strata.runtime.DType;

/**
 * Which dtype holds what: parameters (the master weights, their gradients and the optimizer state) and activations
 * (everything that flows between layers, GEMM operands included).
 */
public record Precision(DType params, DType activations) {

    /** The job's dtype: f64 and f32 hold everything; bf16 means bf16 activations over f32 master weights. */
    public static Precision of(DType dtype) {
        return switch (dtype) {
            case F64, F32 -> new Precision(dtype, dtype);
            case BF16 -> new Precision(DType.F32, DType.BF16);
            default -> throw new IllegalArgumentException("no training precision for dtype " + dtype.configName() + " (f64, f32 or bf16)");
        };
    }
}
