package dev.strata.parallel.pipeline;

import java.util.ArrayList;
import java.util.List;

/**
 * The order in which a stage runs its micro-batches' forwards (F) and backwards (B) in one step. Every stage
 * forwards micro-batches 0..M-1 and backwards them in the same order; schedules differ in how they interleave:
 * <ul>
 *   <li>gpipe: every forward, then every backward; a stage keeps all M micro-batches' activations.</li>
 *   <li>1f1b: stage s runs pp−1−s forwards ahead, then alternates one forward and one backward, then drains; it
 *       keeps at most pp−s micro-batches' activations (pp on the first stage), whatever M is.</li>
 * </ul>
 * Both leave the same bubble, (pp−1)/(M+pp−1) of the step idle on each stage.
 */
public enum PipelineSchedule {
    GPIPE, ONE_F_ONE_B;

    public record Action(boolean forward, int microBatch) {
        @Override public String toString() { return (forward ? "F" : "B") + microBatch; }
    }

    public static PipelineSchedule parse(String name) {
        return switch (name) {
            case "gpipe" -> GPIPE;
            case "1f1b" -> ONE_F_ONE_B;
            default -> throw new IllegalArgumentException("parallel.schedule must be gpipe or 1f1b, got " + name);
        };
    }

    public String configName() { return this == GPIPE ? "gpipe" : "1f1b"; }

    /** Stage stage's actions (of stages), for microBatches micro-batches. */
    public List<Action> actions(int stage, int stages, int microBatches) {
        List<Action> a = new ArrayList<>();
        int warmup = this == GPIPE ? microBatches : Math.min(stages - 1 - stage, microBatches);
        int f = 0, b = 0;
        for (; f < warmup; f++) a.add(new Action(true, f));
        while (f < microBatches) {
            a.add(new Action(true, f++));
            a.add(new Action(false, b++));
        }
        while (b < microBatches) a.add(new Action(false, b++));
        return a;
    }

    /** The share of a step each stage idles, with forward and backward taking the same time on every stage. */
    public double bubble(int stages, int microBatches) { return (stages - 1.0) / (microBatches + stages - 1.0); }

    /** The most micro-batches whose activations a stage keeps at once. */
    public int inFlight(int stage, int stages, int microBatches) {
        int live = 0, most = 0;
        for (Action x : actions(stage, stages, microBatches)) most = Math.max(most, live += x.forward() ? 1 : -1);
        return most;
    }
}
