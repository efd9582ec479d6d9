package dev.strata.runtime.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

class VectorMathTest {
    /** Our exp is within a few float ulps of Math.exp over a softmax's range, and the same on every call (compiled or not). */
    @Test
    void expIsAccurateAndRepeatable() {
        int lanes = FloatVector.SPECIES_PREFERRED.length();
        float[] x = new float[lanes * 20_000], y = new float[x.length], again = new float[x.length];
        SplittableRandom rng = new SplittableRandom(3);
        for (int i = 0; i < x.length; i++) x[i] = i < 64 ? -i * 0.25f : (float) -rng.nextDouble(0, 87);
        x[1] = -0f;
        double worst = 0;
        for (int round = 0; round < 50; round++) { // enough calls for the JIT to compile exp in the middle of them
            for (int i = 0; i < x.length; i += lanes)
                VectorMath.exp(FloatVector.fromArray(FloatVector.SPECIES_PREFERRED, x, i)).intoArray(round == 0 ? y : again, i);
            if (round > 0) for (int i = 0; i < x.length; i++) assertEquals(Float.floatToIntBits(y[i]), Float.floatToIntBits(again[i]), "x = " + x[i]);
        }
        for (int i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(y[i] - Math.exp(x[i])) / Math.exp(x[i]));
        System.out.printf("vector exp: worst relative error %.2e over [-87, 0]%n", worst);
        assertTrue(worst < 4e-7, "relative error " + worst);
        assertEquals(1f, y[1], "exp(-0) = 1");
    }

    @Test
    void crossEntropyRowMatchesADoubleReference() {
        int v = 50_257;
        float[] logits = new float[v], dlogits = new float[v];
        SplittableRandom rng = new SplittableRandom(4);
        for (int i = 0; i < v; i++) logits[i] = (float) rng.nextGaussian(0, 3);
        double max = Double.NEGATIVE_INFINITY, sum = 0;
        for (float l : logits) max = Math.max(max, l);
        for (float l : logits) sum += Math.exp(l - max);
        double expected = Math.log(sum) + max - logits[123];
        double loss = VectorMath.crossEntropyRow(logits, dlogits, 0, v, 123, 0.5);
        assertEquals(expected, loss, 1e-5 * expected);
        assertEquals(0.5 * (Math.exp(logits[7] - max) / sum), dlogits[7], 1e-6 * Math.abs(dlogits[7]) + 1e-12);
    }
}
