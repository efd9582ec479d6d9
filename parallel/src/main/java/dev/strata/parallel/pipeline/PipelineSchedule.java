package dev.strata.parallel.pipeline;

import java.util.ArrayList;
import java.util.List;

/**
 * The order in which a stage runs its micro-batches' forwards (F) and backwards (B, W) in one step. Every stage
 * forwards micro-batches 0..M-1 and backwards them in the same order; schedules differ in how they interleave:
 * <ul>
 *   <li>gpipe: every forward, then every backward; a stage keeps all M micro-batches' activations.</li>
 *   <li>1f1b: stage s runs pp−1−s forwards ahead, then alternates one forward and one backward, then drains; it
 *       keeps at most pp−s micro-batches' activations (pp on the first stage), whatever M is.</li>
 *   <li>zero_bubble (ZB-H1, Qi et al. 2023): 1F1B's order with each backward split into B, the input gradient the
 *       stage before waits for, and W, the weight gradients; stage s puts its W's pp−1−s micro-batches off, so the
 *       waits of the drain are spent on them. Same activations in flight as 1F1B.</li>
 * </ul>
 * GPipe and 1F1B leave the same bubble, (pp−1)/(M+pp−1) of the step idle on each stage; with F, B and W of equal
 * cost, ZB-H1 leaves a third of it.
 */
public enum PipelineSchedule {
    GPIPE, ONE_F_ONE_B, ZERO_BUBBLE;

    public enum Pass { F, B, W }

    /** A forward, a backward (its input-gradient half only under zero_bubble) or, under zero_bubble, a weight-gradient half. */
    public record Action(Pass pass, int microBatch) {
        public boolean forward() { return pass == Pass.F; }

        @Override public String toString() { return pass.name() + microBatch; }
    }

    public static PipelineSchedule parse(String name) {
        return switch (name) {
            case "gpipe" -> GPIPE;
            case "1f1b" -> ONE_F_ONE_B;
            case "zero_bubble" -> ZERO_BUBBLE;
            default -> throw new IllegalArgumentException("parallel.schedule must be gpipe, 1f1b or zero_bubble, got " + name);
        };
    }

    public String configName() {
        return switch (this) {
            case GPIPE -> "gpipe";
            case ONE_F_ONE_B -> "1f1b";
            case ZERO_BUBBLE -> "zero_bubble";
        };
    }

    /** Stage stage's actions (of stages), for microBatches micro-batches. */
    public List<Action> actions(int stage, int stages, int microBatches) {
        List<Action> a = new ArrayList<>();
        int warmup = this == GPIPE ? microBatches : Math.min(stages - 1 - stage, microBatches);
        int f = 0, b = 0, putOff = this == ZERO_BUBBLE ? warmup : 0;
        for (; f < warmup; f++) a.add(new Action(Pass.F, f));
        while (f < microBatches) {
            a.add(new Action(Pass.F, f++));
            b = backward(a, b, putOff);
        }
        while (b < microBatches) b = backward(a, b, putOff);
        if (this == ZERO_BUBBLE) for (int w = Math.max(0, microBatches - putOff); w < microBatches; w++) a.add(new Action(Pass.W, w));
        return a;
    }

    /** B(b), then under zero_bubble the W putOff micro-batches behind it, if any; returns the next backward's micro-batch. */
    private int backward(List<Action> a, int b, int putOff) {
        a.add(new Action(Pass.B, b));
        if (this == ZERO_BUBBLE && b - putOff >= 0) a.add(new Action(Pass.W, b - putOff));
        return b + 1;
    }

    /** The share of a step each stage idles, with a forward, an input-gradient and a weight-gradient pass of equal cost. */
    public double bubble(int stages, int microBatches) {
        double idle = this == ZERO_BUBBLE ? stages - 1.0 : 3 * (stages - 1.0);
        return idle / (3.0 * microBatches + idle);
    }

    /** The most micro-batches whose activations a stage keeps at once. */
    public int inFlight(int stage, int stages, int microBatches) {
        int live = 0, most = 0;
        for (Action x : actions(stage, stages, microBatches))
            if (x.pass() != Pass.W) most = Math.max(most, live += x.forward() ? 1 : -1);
        return most;
    }
}
