package dev.strata.runtime.cpu;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * SIMD kernels for the F32 loops that dominate CPU training. Only lane-wise operations whose results do not depend on
 * JIT state are used (add, max, multiply, fused multiply-add, exact conversions); cross-lane sums are done in a fixed
 * order and exp is our own polynomial ({@link #exp}), because the Vector API's reductions and transcendental functions
 * round differently once compiled (the JIT's EXP is SVML's, the interpreter's StrictMath's): two runs of one job would
 * drift apart from the step the JIT compiled them, and a resumed run from an uninterrupted one.
 */
final class VectorMath {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;
    private static final float LOG2E = 1.44269504f, LN2_HI = 0.693145751953125f, LN2_LO = 1.42860677e-6f;

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
        DoubleVector acc = DoubleVector.zero(D);
        for (j = 0; j < upper; j += S.length()) {
            FloatVector e = exp(FloatVector.fromArray(S, logits, base + j).sub(max));
            if (dlogits != null) e.intoArray(dlogits, base + j);
            for (int part = 0; part < S.length() / D.length(); part++)
                acc = acc.add((DoubleVector) e.convertShape(VectorOperators.F2D, D, part));
        }
        for (int lane = 0; lane < D.length(); lane++) sum += acc.lane(lane);
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

    /**
     * e^x in each lane for x <= 0 (x is a logit minus the row's max), from basic IEEE operations only, so compiled and
     * interpreted code agree bit for bit: x = n·ln2 + r with |r| <= ln2/2, e^r by its Taylor polynomial of degree 7
     * (relative error below 2e-8, under float's rounding), times 2^n built in the exponent bits. Below -87.3 the
     * result is about 1e-38 instead of less: nothing a softmax over float logits can tell apart.
     */
    static FloatVector exp(FloatVector x) {
        x = x.max(-87.3f);
        // n = round(x·log2 e): for these negative values, truncation of t - 0.5 rounds to nearest
        IntVector n = (IntVector) x.mul(LOG2E).sub(0.5f).convert(VectorOperators.F2I, 0);
        FloatVector nf = (FloatVector) n.convert(VectorOperators.I2F, 0);
        FloatVector r = nf.fma(FloatVector.broadcast(S, -LN2_HI), x);
        r = nf.fma(FloatVector.broadcast(S, -LN2_LO), r);
        FloatVector p = r.fma(1f / 5040, 1f / 720);
        p = p.fma(r, FloatVector.broadcast(S, 1f / 120));
        p = p.fma(r, FloatVector.broadcast(S, 1f / 24));
        p = p.fma(r, FloatVector.broadcast(S, 1f / 6));
        p = p.fma(r, FloatVector.broadcast(S, 0.5f));
        p = p.fma(r, FloatVector.broadcast(S, 1f));
        p = p.fma(r, FloatVector.broadcast(S, 1f));
        FloatVector twoToN = n.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return p.mul(twoToN);
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
