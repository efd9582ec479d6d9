package dev.strata.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import org.junit.jupiter.api.Test;

/** Host tensors as checkpoints hold them: the padded vocabulary's rows cut off and put back. */
class HostTensorTest {

    @Test
    void withRowsCutsRowsOffAndPadsWithZeroRows() {
        for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
            HostTensor t = HostTensor.ofDoubles(new double[] {1, 2, 3, 4, 5, 6, 7, 8}, dtype, 4, 2);
            HostTensor cut = t.withRows(3);
            assertArrayEquals(new int[] {3, 2}, cut.shape());
            assertArrayEquals(new double[] {1, 2, 3, 4, 5, 6}, cut.toDoubles());
            HostTensor padded = cut.withRows(5);
            assertArrayEquals(new int[] {5, 2}, padded.shape());
            assertArrayEquals(new double[] {1, 2, 3, 4, 5, 6, 0, 0, 0, 0}, padded.toDoubles());
            assertArrayEquals(t.toDoubles(), t.withRows(4).toDoubles());
        }
    }
}
