package dev.strata.parallel.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The schedules' orders, their bounds on micro-batches in flight and their bubble; the balanced stage split. */
class PipelineScheduleTest {
    @Test
    void oneForwardOneBackwardWarmsUpThenAlternates() {
        assertEquals("[F0, F1, F2, B0, F3, B1, B2, B3]", PipelineSchedule.ONE_F_ONE_B.actions(0, 3, 4).toString());
        assertEquals("[F0, F1, B0, F2, B1, F3, B2, B3]", PipelineSchedule.ONE_F_ONE_B.actions(1, 3, 4).toString());
        assertEquals("[F0, B0, F1, B1, F2, B2, F3, B3]", PipelineSchedule.ONE_F_ONE_B.actions(2, 3, 4).toString());
        assertEquals("[F0, F1, F2, F3, B0, B1, B2, B3]", PipelineSchedule.GPIPE.actions(1, 3, 4).toString());
        for (int s = 0; s < 4; s++) {
            assertEquals(Math.min(4 - s, 8), PipelineSchedule.ONE_F_ONE_B.inFlight(s, 4, 8));
            assertEquals(8, PipelineSchedule.GPIPE.inFlight(s, 4, 8));
        }
        assertEquals(2, PipelineSchedule.ONE_F_ONE_B.inFlight(0, 4, 2), "fewer micro-batches than stages");
        assertEquals(3.0 / 11, PipelineSchedule.ONE_F_ONE_B.bubble(4, 8), 1e-15);
    }

    /** ZB-H1: each backward's weight half follows it, pp−1−s micro-batches late, so stage 0's drain runs weight halves. */
    @Test
    void zeroBubbleFillsTheDrainWithWeightGradients() {
        assertEquals("[F0, F1, F2, B0, F3, B1, B2, W0, B3, W1, W2, W3]", PipelineSchedule.ZERO_BUBBLE.actions(0, 3, 4).toString());
        assertEquals("[F0, B0, W0, F1, B1, W1, F2, B2, W2, F3, B3, W3]", PipelineSchedule.ZERO_BUBBLE.actions(2, 3, 4).toString());
        for (int s = 0; s < 4; s++) assertEquals(PipelineSchedule.ONE_F_ONE_B.inFlight(s, 4, 8), PipelineSchedule.ZERO_BUBBLE.inFlight(s, 4, 8));
        assertEquals(PipelineSchedule.ONE_F_ONE_B.bubble(4, 8) / PipelineSchedule.ZERO_BUBBLE.bubble(4, 8), 3 * (24 + 3.0) / (24 + 9), 1e-12);
    }

    @Test
    void stagesBalanceTheHeadsCost() {
        assertEquals(List.of(2, 2), StageSplit.balanced(4, 2, 1, 0, 0));
        assertEquals(List.of(3, 1), StageSplit.balanced(4, 2, 1, 0, 1.5), "a heavy head takes layers off the last stage");
        assertEquals(List.of(1, 2, 2, 1), StageSplit.balanced(6, 4, 1, 0.9, 0.9));
        assertEquals(List.of(1, 1, 1), StageSplit.balanced(3, 3, 1, 10, 10), "every stage keeps a layer");
        int[] first = StageSplit.firstLayers(List.of(1, 2, 2, 1), 6);
        assertEquals(List.of(0, 1, 3, 5, 6), java.util.Arrays.stream(first).boxed().toList());
        assertThrows(IllegalArgumentException.class, () -> StageSplit.balanced(2, 3, 1, 0, 0));
    }
}
