package dev.strata.trainer.model;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;

/**
 * Rotary position tables, cos and sin (maxSeqLen, D/2), with inverse frequencies theta^(-2i/D) as in Llama.
 * Computed in F64 and stored in the model dtype.
 */
public record Rope(Tensor cos, Tensor sin) {
    public static Rope of(Backend backend, DType dtype, int maxSeqLen, int headDim, double theta) {
        int half = headDim / 2;
        double[] c = new double[maxSeqLen * half], s = new double[maxSeqLen * half];
        for (int pos = 0; pos < maxSeqLen; pos++) {
            for (int i = 0; i < half; i++) {
                double angle = pos * Math.pow(theta, -2.0 * i / headDim);
                c[pos * half + i] = Math.cos(angle);
                s[pos * half + i] = Math.sin(angle);
            }
        }
        return new Rope(backend.fromDoubles(c, dtype, maxSeqLen, half), backend.fromDoubles(s, dtype, maxSeqLen, half));
    }
}
