package dev.strata.runtime.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * SIMD kernels for the F32 loops that dominate CPU training. Only lane-wise operations whose results do not depend on
 * JIT state are used (max, multiply, fused multiply-add); cross-lane sums are done in a fixed order and exp is scalar,
 * because the Vector API's reductions and transcendental functions may round differently once compiled, which would
 * make a resumed run drift from an uninterrupted one.
 */
final class VectorMath {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

    private VectorMath() {}

    /**
     * Cross-entropy of one row of F32 logits [base, base+v) against target (ignored when negative); when dlogits is
     * non-null its row receives gradScale * (softmax - onehot), and it may be the logits array.
     */
    static double crossEntropyRow(float[] logits, float[] dlogits, int base, int v, int target, double gradScale) {
        if (target < 0) {
            if (dlogits != null) java.util.Arrays.fill(dlogits, base, base + v, 0f);
            return 0;
        }
        int upper = S.loopBound(v), j;
        FloatVector maxV = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        for (j = 0; j < upper; j += S.length()) maxV = maxV.max(FloatVector.fromArray(S, logits, base + j));
        float max = maxV.reduceLanes(VectorOperators.MAX);
        for (; j < v; j++) max = Math.max(max, logits[base + j]);
        double targetLogit = logits[base + target], sum = 0;
        // exp in vector lanes (the JDK's SVML intrinsics), each vector's sum added in double
        for (j = 0; j < upper; j += S.length()) {
            FloatVector e = FloatVector.fromArray(S, logits, base + j).sub(max).lanewise(VectorOperators.EXP);
            if (dlogits != null) e.intoArray(dlogits, base + j);
            sum += e.reduceLanes(VectorOperators.ADD);
        }
        for (; j < v; j++) {
            float e = (float) Math.exp(logits[base + j] - max);
            if (dlogits != null) dlogits[base + j] = e;
            sum += e;
        }
        if (dlogits != null) {
            float scale = (float) (gradScale / sum);
            for (j = 0; j < upper; j += S.length())
                FloatVector.fromArray(S, dlogits, base + j).mul(scale).intoArray(dlogits, base + j);
            for (; j < v; j++) dlogits[base + j] *= scale;
            dlogits[base + target] -= (float) gradScale;
        }
        return Math.log(sum) + max - targetLogit;
    }

    /** Σ a[i+e]·b[j+e], e < n, in F32 lanes summed in double. */
    static double dot(float[] a, int i, float[] b, int j, int n) {
        int upper = S.loopBound(n), e;
        FloatVector acc = FloatVector.zero(S);
        for (e = 0; e < upper; e += S.length())
            acc = FloatVector.fromArray(S, a, i + e).fma(FloatVector.fromArray(S, b, j + e), acc);
        double s = 0;
        for (int lane = 0; lane < S.length(); lane++) s += acc.lane(lane);
        for (; e < n; e++) s += a[i + e] * b[j + e];
        return s;
    }
}
