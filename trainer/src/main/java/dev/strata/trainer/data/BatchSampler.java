package dev.strata.trainer.data;

import java.util.SplittableRandom;

/**
 * Visits the windows of a dataset in a shuffled order, a new permutation each epoch, all of it determined by
 * (seed, epoch). Its whole state is (epoch, cursor): saved in a checkpoint, it resumes the exact batch sequence.
 */
public final class BatchSampler {
    public record Position(long epoch, long cursor) {}

    private final Windows data;
    private final long seed;
    private long epoch, cursor;
    private int[] order;

    public BatchSampler(Windows data, long seed, Position start) {
        if (data.windows() > Integer.MAX_VALUE) throw new IllegalArgumentException("dataset has too many windows for the sampler");
        this.data = data;
        this.seed = seed;
        this.epoch = start.epoch();
        this.cursor = start.cursor();
        this.order = permutation(epoch);
    }

    public Position position() { return new Position(epoch, cursor); }

    /** Fills (B,T) inputs and targets with the next B windows. */
    public void next(int batch, int[] inputs, int[] targets) { next(batch, 0, batch, inputs, targets); }

    /**
     * A data-parallel rank's share: moves past the next {@code batch} windows (the global micro-batch, so every rank's
     * position stays the global one) and reads only rows [from, from + rows) of them into (rows,T) inputs and targets.
     */
    public void next(int batch, int from, int rows, int[] inputs, int[] targets) { next(batch, from, rows, inputs, targets, null); }

    /** As above, and where the data is packed, each position's document start into (rows,T) starts. */
    public void next(int batch, int from, int rows, int[] inputs, int[] targets, int[] starts) {
        for (int row = 0; row < batch; row++) {
            if (cursor == order.length) {
                epoch++;
                cursor = 0;
                order = permutation(epoch);
            }
            int window = order[(int) cursor++];
            if (row >= from && row < from + rows) {
                data.window(window, inputs, targets, row - from);
                if (starts != null) data.starts(window, starts, row - from);
            }
        }
    }

    private int[] permutation(long e) {
        int n = (int) data.windows();
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        SplittableRandom rng = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + e);
        for (int i = n - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1), t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }
}
