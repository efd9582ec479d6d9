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
 *   <li>interleaved (Narayanan et al. 2021, Megatron-LM's): each stage holds v chunks of layers (stage s the
 *       chunks s, s+pp, ...), and a micro-batch passes every stage v times. 1F1B over the M·v chunk passes, in groups
 *       of pp micro-batches per chunk; the warm-up runs (pp−1−s)·2 + (v−1)·pp passes ahead. Each pass is 1/v of the
 *       stage's work, so the bubble shrinks v times, for more point-to-point traffic and more contexts in flight.</li>
 *   <li>zero_bubble (ZB-H1, Qi et al. 2023): 1F1B's order with each backward split into B, the input gradient the
 *       stage before waits for, and W, the weight gradients; stage s puts its W's pp−1−s micro-batches off, so the
 *       waits of the drain are spent on them. Same activations in flight as 1F1B.</li>
 * </ul>
 * GPipe and 1F1B leave the same bubble, (pp−1)/(M+pp−1) of the step idle on each stage; interleaving leaves
 * (pp−1)/(v·M+pp−1); with F, B and W of equal cost, ZB-H1 leaves a third of 1F1B's.
 *
 * @param chunks layer chunks per stage (virtual stages): more than 1 only when interleaved
 */
public record PipelineSchedule(Kind kind, int chunks) {
    public enum Kind { GPIPE, ONE_F_ONE_B, INTERLEAVED, ZERO_BUBBLE }

    public static final PipelineSchedule GPIPE = new PipelineSchedule(Kind.GPIPE, 1);
    public static final PipelineSchedule ONE_F_ONE_B = new PipelineSchedule(Kind.ONE_F_ONE_B, 1);
    public static final PipelineSchedule ZERO_BUBBLE = new PipelineSchedule(Kind.ZERO_BUBBLE, 1);

    public PipelineSchedule {
        if (kind == Kind.INTERLEAVED ? chunks < 2 : chunks != 1)
            throw new IllegalArgumentException(kind + " with " + chunks + " chunks a stage: interleaved needs 2 or more, the others 1");
    }

    public static PipelineSchedule interleaved(int chunks) { return new PipelineSchedule(Kind.INTERLEAVED, chunks); }

    public enum Pass { F, B, W }

    /**
     * A forward, a backward (its input-gradient half only under zero_bubble) or, under zero_bubble, a weight-gradient
     * half, of one micro-batch through one of the stage's chunks (0 .. chunks-1; the stage's chunk c is the model's
     * chunk c·pp + stage).
     */
    public record Action(Pass pass, int chunk, int microBatch) {
        public boolean forward() { return pass == Pass.F; }

        @Override public String toString() { return pass.name() + microBatch + (chunk > 0 ? "c" + chunk : ""); }
    }

    /** parallel.schedule's name, and parallel.virtual_stages for interleaved. */
    public static PipelineSchedule of(String name, int virtualStages) {
        return switch (name) {
            case "gpipe" -> GPIPE;
            case "1f1b" -> ONE_F_ONE_B;
            case "interleaved" -> interleaved(virtualStages);
            case "zero_bubble" -> ZERO_BUBBLE;
            default -> throw new IllegalArgumentException("parallel.schedule must be gpipe, 1f1b, interleaved or zero_bubble, got " + name);
        };
    }

    public String configName() {
        return switch (kind) {
            case GPIPE -> "gpipe";
            case ONE_F_ONE_B -> "1f1b";
            case INTERLEAVED -> "interleaved (" + chunks + " chunks a stage)";
            case ZERO_BUBBLE -> "zero_bubble";
        };
    }

    /** Whether backwards leave their weight gradients to W passes. */
    public boolean splitsBackward() { return kind == Kind.ZERO_BUBBLE; }

    /** Why microBatches micro-batches cannot run on stages stages under this schedule, or null when they can. */
    public String refusal(int stages, int microBatches) {
        if (kind == Kind.INTERLEAVED && microBatches % stages != 0)
            return "interleaved runs micro-batches in groups of pp = " + stages + ": training.grad_accum_steps must be a multiple of it, got " + microBatches;
        return null;
    }

    /** Stage stage's actions (of stages), for microBatches micro-batches. */
    public List<Action> actions(int stage, int stages, int microBatches) {
        if (refusal(stages, microBatches) != null) throw new IllegalArgumentException(refusal(stages, microBatches));
        if (kind == Kind.INTERLEAVED) return interleavedActions(stage, stages, microBatches);
        List<Action> a = new ArrayList<>();
        int warmup = kind == Kind.GPIPE ? microBatches : Math.min(stages - 1 - stage, microBatches);
        int f = 0, b = 0, putOff = splitsBackward() ? warmup : 0;
        for (; f < warmup; f++) a.add(new Action(Pass.F, 0, f));
        while (f < microBatches) {
            a.add(new Action(Pass.F, 0, f++));
            b = backward(a, b, putOff);
        }
        while (b < microBatches) b = backward(a, b, putOff);
        if (splitsBackward()) for (int w = Math.max(0, microBatches - putOff); w < microBatches; w++) a.add(new Action(Pass.W, 0, w));
        return a;
    }

    /** B(b), then under zero_bubble the W putOff micro-batches behind it, if any; returns the next backward's micro-batch. */
    private int backward(List<Action> a, int b, int putOff) {
        a.add(new Action(Pass.B, 0, b));
        if (splitsBackward() && b - putOff >= 0) a.add(new Action(Pass.W, 0, b - putOff));
        return b + 1;
    }

    /** Pass k of the M·chunks: forwards take chunks upwards in groups of pp micro-batches, backwards downwards. */
    private List<Action> interleavedActions(int stage, int stages, int microBatches) {
        int passes = microBatches * chunks, warmup = Math.min(passes, (stages - 1 - stage) * 2 + (chunks - 1) * stages);
        List<Action> a = new ArrayList<>();
        for (int k = 0; k < warmup; k++) a.add(pass(Pass.F, k, stages));
        for (int k = 0; k < passes - warmup; k++) {
            a.add(pass(Pass.F, warmup + k, stages));
            a.add(pass(Pass.B, k, stages));
        }
        for (int k = passes - warmup; k < passes; k++) a.add(pass(Pass.B, k, stages));
        return a;
    }

    private Action pass(Pass pass, int k, int stages) {
        int group = k % (stages * chunks), chunk = group / stages;
        return new Action(pass, pass == Pass.F ? chunk : chunks - 1 - chunk, k / (stages * chunks) * stages + group % stages);
    }

    /** The share of a step each stage idles, with a forward, an input-gradient and a weight-gradient pass of equal cost. */
    public double bubble(int stages, int microBatches) {
        double idle = kind == Kind.ZERO_BUBBLE ? stages - 1.0 : 3 * (stages - 1.0) / chunks;
        return idle / (3.0 * microBatches + idle);
    }

    /** The most chunk passes (a micro-batch through one chunk) whose activations a stage keeps at once. */
    public int inFlight(int stage, int stages, int microBatches) {
        int live = 0, most = 0;
        for (Action x : actions(stage, stages, microBatches))
            if (x.pass() != Pass.W) most = Math.max(most, live += x.forward() ? 1 : -1);
        return most;
    }
}
