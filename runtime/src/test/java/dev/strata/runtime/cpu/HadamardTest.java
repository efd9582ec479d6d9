package dev.strata.runtime.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The CPU Walsh–Hadamard transform: Sylvester's matrix, its own inverse, SIMD equal to scalar bit for bit. */
class HadamardTest {

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4, 8, 16, 32, 128, 1024, 4096})
    void simdEqualsScalarAndTheMatrix(int block) {
        double[] v = new SplittableRandom(block).doubles(3L * block, -2, 2).toArray();
        double[] simd = v.clone(), scalar = v.clone();
        Hadamard.rotate(simd, block);
        Hadamard.rotateScalar(scalar, block);
        assertArrayEquals(scalar, simd, 0, "block " + block + ": SIMD and scalar butterflies round alike");
        if (block <= 128) { // H[i][j] = (-1)^popcount(i & j) / sqrt(block), block by block
            for (int start = 0; start < v.length; start += block)
                for (int i = 0; i < block; i++) {
                    double want = 0;
                    for (int j = 0; j < block; j++) want += (Integer.bitCount(i & j) % 2 == 0 ? 1 : -1) * v[start + j];
                    assertEquals(want / Math.sqrt(block), simd[start + i], 1e-12, "block " + block + " element " + (start + i));
                }
        }
        Hadamard.rotate(simd, block);
        assertArrayEquals(v, simd, 1e-12, "block " + block + ": the normalised transform is its own inverse");
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 3, 12, 64})
    void blocksThatAreNotPowersOfTwoDividingTheLengthAreRefused(int block) {
        assertThrows(IllegalArgumentException.class, () -> Hadamard.rotate(new double[96], block));
    }
}
