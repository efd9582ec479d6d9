package dev.strata.trainer.model;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;

/**
 * Rotary position tables, cos and sin (maxSeqLen, D/2), with inverse frequencies theta^(-2i/D) as in Llama.
 * Computed in F64 and stored in the model dtype.
 */
public record Rope(Tensor cos, Tensor sin) implements AutoCloseable {
    public static Rope of(Backend backend, DType dtype, int maxSeqLen, int headDim, double theta) {
        return of(backend, dtype, 0, maxSeqLen, headDim, theta);
    }

    /** The tables of positions [from, from + count) only, as generation needs for its new tokens. */
    public static Rope of(Backend backend, DType dtype, int from, int count, int headDim, double theta) {
        int half = headDim / 2;
        double[] c = new double[count * half], s = new double[count * half];
        for (int row = 0; row < count; row++) {
            for (int i = 0; i < half; i++) {
                double angle = (from + row) * Math.pow(theta, -2.0 * i / headDim);
                c[row * half + i] = Math.cos(angle);
                s[row * half + i] = Math.sin(angle);
            }
        }
        return new Rope(backend.fromDoubles(c, dtype, count, half), backend.fromDoubles(s, dtype, count, half));
    }

    @Override public void close() {
        cos.close();
        sin.close();
    }
}
