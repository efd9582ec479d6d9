package dev.strata.trainer.hf;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.cpu.CpuBackend;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The training parity tool on the CPU: steps on a repeated batch learn it; a batch file of the wrong rank is refused. */
class ParityStepsTest {
    final ParitySteps.Settings settings = new ParitySteps.Settings(3e-3, 3e-4, 2, 0.1, 1.0);

    @Test
    void repeatedBatchIsLearned() throws Exception {
        int steps = 8, b = 2, t = 12;
        int[] row = new SplittableRandom(5).ints((long) b * (t + 1), 0, 64).toArray(), ids = new int[steps * row.length];
        for (int s = 0; s < steps; s++) System.arraycopy(row, 0, ids, s * row.length, row.length);
        double[] losses = ParitySteps.run(HfParityTest.reference("tiny-llama"), HostTensor.ofInts(ids, DType.I64, steps, b, t + 1),
                CpuBackend.INSTANCE, DType.F64, settings);
        assertTrue(losses[steps - 1] < losses[0] - 0.5, "loss went from " + losses[0] + " to " + losses[steps - 1]);
    }

    @Test
    void batchesMustBeStepsByBatchBySequence() {
        var e = assertThrows(IllegalArgumentException.class, () -> ParitySteps.run(HfParityTest.reference("tiny-llama"),
                HostTensor.ofInts(new int[] {1, 2, 3, 4}, DType.I64, 2, 2), CpuBackend.INSTANCE, DType.F64, settings));
        assertTrue(e.getMessage().contains("[steps, batch, seq + 1]"), e.getMessage());
    }
}
