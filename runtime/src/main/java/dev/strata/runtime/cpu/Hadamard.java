package dev.strata.runtime.cpu;

/**
 * The fast Walsh–Hadamard transform, normalised and block-diagonal: each run of {@code block} consecutive values is
 * multiplied by H/√block, H the Sylvester Hadamard matrix. H/√block is symmetric and orthogonal, so the transform is
 * its own inverse and rotating both operands of a product along the contracted dimension leaves the product as it
 * was.
 */
public final class Hadamard {
    private Hadamard() {}

    /** Rotates v in place, block by block; block is a power of two that divides v.length. */
    public static void rotate(double[] v, int block) {
        if (block < 1 || Integer.bitCount(block) != 1 || v.length % block != 0)
            throw new IllegalArgumentException("a Hadamard block must be a power of two dividing " + v.length + ", got " + block);
        double norm = 1 / Math.sqrt(block);
        for (int start = 0; start < v.length; start += block) {
            for (int h = 1; h < block; h <<= 1)
                for (int i = start; i < start + block; i += 2 * h)
                    for (int j = i; j < i + h; j++) {
                        double a = v[j], b = v[j + h];
                        v[j] = a + b;
                        v[j + h] = a - b;
                    }
            for (int i = start; i < start + block; i++) v[i] *= norm;
        }
    }
}
