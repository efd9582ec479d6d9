package dev.strata.parallel.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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

    /** Megatron-LM's interleaved order: chunks upwards in groups of pp micro-batches, a longer warm-up on earlier stages. */
    @Test
    void interleavedCyclesChunksInGroupsOfStages() {
        PipelineSchedule two = PipelineSchedule.interleaved(2);
        assertEquals("[F0, F1, F0c1, F1c1, F2, B0c1, F3, B1c1, F2c1, B0, F3c1, B1, B2c1, B3c1, B2, B3]", two.actions(0, 2, 4).toString());
        assertEquals("[F0, F1, F0c1, B0c1, F1c1, B1c1, F2, B0, F3, B1, F2c1, B2c1, F3c1, B3c1, B2, B3]", two.actions(1, 2, 4).toString());
        assertEquals(5, two.inFlight(0, 2, 4));
        assertEquals(1.0 / 9, two.bubble(2, 4), 1e-15);
        assertEquals(2 * two.bubble(2, 400), PipelineSchedule.ONE_F_ONE_B.bubble(2, 400), 1e-4, "about half 1F1B's bubble");
        assertThrows(IllegalArgumentException.class, () -> two.actions(0, 2, 3), "micro-batches in groups of pp");
        assertThrows(IllegalArgumentException.class, () -> PipelineSchedule.interleaved(1));
    }

    /**
     * Every schedule, run on all stages at once with buffered sends: each action waits only for what it reads (a
     * forward for the chunk before's, a backward for the chunk after's and its own forward, a W for its B); every
     * stage finishes (no wait goes round in a circle), runs each micro-batch through each chunk once, and the bubble
     * of the simulated clock (every pass one tick) is the computed one for 1F1B and GPipe.
     */
    @Test
    void everyScheduleRunsToTheEndOnEveryStage() {
        for (PipelineSchedule schedule : List.of(PipelineSchedule.GPIPE, PipelineSchedule.ONE_F_ONE_B, PipelineSchedule.ZERO_BUBBLE,
                PipelineSchedule.interleaved(2), PipelineSchedule.interleaved(3)))
            for (int stages : new int[] {2, 3, 4})
                for (int m : new int[] {stages, 2 * stages, 3 * stages}) simulate(schedule, stages, m);
    }

    private static void simulate(PipelineSchedule schedule, int stages, int m) {
        String at = schedule.configName() + " on " + stages + " stages, " + m + " micro-batches";
        int v = schedule.chunks(), chunks = stages * v;
        List<List<PipelineSchedule.Action>> actions = new java.util.ArrayList<>();
        for (int s = 0; s < stages; s++) actions.add(schedule.actions(s, stages, m));
        java.util.Map<String, Integer> doneAt = new java.util.HashMap<>(); // "F" + model chunk + "." + micro-batch -> tick
        int[] next = new int[stages], clock = new int[stages];
        for (int progressed = 1; progressed > 0; ) {
            progressed = 0;
            for (int s = 0; s < stages; s++) {
                if (next[s] == actions.get(s).size()) continue;
                var a = actions.get(s).get(next[s]);
                int g = a.chunk() * stages + s, i = a.microBatch();
                List<String> needs = switch (a.pass()) {
                    case F -> g == 0 ? List.of() : List.of("F" + (g - 1) + "." + i);
                    case B -> g == chunks - 1 ? List.of("F" + g + "." + i) : List.of("F" + g + "." + i, "B" + (g + 1) + "." + i);
                    case W -> List.of("B" + g + "." + i);
                };
                if (!needs.stream().allMatch(doneAt::containsKey)) continue;
                int start = Math.max(clock[s], needs.stream().mapToInt(doneAt::get).max().orElse(0));
                String key = a.pass().name() + g + "." + i;
                assertTrue(doneAt.put(key, clock[s] = start + 1) == null, at + ": " + key + " twice");
                next[s]++;
                progressed++;
            }
        }
        for (int s = 0; s < stages; s++) assertEquals(actions.get(s).size(), next[s], at + ": stage " + s + " stuck at " + next[s]);
        int passes = schedule.splitsBackward() ? 3 : 2;
        assertEquals(chunks * m * passes, doneAt.size(), at);
        if (schedule.kind() != PipelineSchedule.Kind.ONE_F_ONE_B && schedule.kind() != PipelineSchedule.Kind.GPIPE) return;
        int end = java.util.Arrays.stream(clock).max().orElseThrow(); // a backward is one tick here, not two: bubble (p−1)/(M+p−1) of 2 units a pass
        assertEquals((double) (stages - 1) / (m + stages - 1), 1 - 2.0 * m / end, 1e-12, at);
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
