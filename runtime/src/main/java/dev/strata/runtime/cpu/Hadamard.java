package dev.strata.runtime.cpu;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The fast Walsh–Hadamard transform, normalised and block-diagonal: each run of {@code block} consecutive values is
 * multiplied by H/√block, H the Sylvester Hadamard matrix. H/√block is symmetric and orthogonal, so the transform is
 * its own inverse and rotating both operands of a product along the contracted dimension leaves the product as it
 * was. Butterflies at least a vector apart run on SIMD lanes (lane-wise adds and subtracts: the same rounding as the
 * scalar loop, so {@link #rotateScalar} agrees bit for bit and serves as the reference).
 */
public final class Hadamard {
    private static final VectorSpecies<Double> S = DoubleVector.SPECIES_PREFERRED;

    private Hadamard() {}

    /** Rotates v in place, block by block; block is a power of two that divides v.length. */
    public static void rotate(double[] v, int block) {
        requireBlock(v, block);
        int lanes = S.length();
        for (int start = 0; start < v.length; start += block) {
            for (int h = 1; h < block; h <<= 1) {
                if (h < lanes) {
                    butterflies(v, start, block, h);
                    continue;
                }
                for (int i = start; i < start + block; i += 2 * h)
                    for (int j = i; j < i + h; j += lanes) {
                        DoubleVector a = DoubleVector.fromArray(S, v, j), b = DoubleVector.fromArray(S, v, j + h);
                        a.add(b).intoArray(v, j);
                        a.sub(b).intoArray(v, j + h);
                    }
            }
            normalise(v, start, block);
        }
    }

    /** The same transform without SIMD. */
    public static void rotateScalar(double[] v, int block) {
        requireBlock(v, block);
        for (int start = 0; start < v.length; start += block) {
            for (int h = 1; h < block; h <<= 1) butterflies(v, start, block, h);
            normalise(v, start, block);
        }
    }

    private static void butterflies(double[] v, int start, int block, int h) {
        for (int i = start; i < start + block; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                double a = v[j], b = v[j + h];
                v[j] = a + b;
                v[j + h] = a - b;
            }
    }

    private static void normalise(double[] v, int start, int block) {
        double norm = 1 / Math.sqrt(block);
        for (int i = start; i < start + block; i++) v[i] *= norm;
    }

    private static void requireBlock(double[] v, int block) {
        if (block < 1 || Integer.bitCount(block) != 1 || v.length % block != 0)
            throw new IllegalArgumentException("a Hadamard block must be a power of two dividing " + v.length + ", got " + block);
    }
}
