package dev.strata.trainer.model;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;

/**
 * Examples packed into a batch's rows: where each position's document begins in its row, so attention stays
 * inside it, and each position's index within its document, which RoPE's angles (Llama) or the learned position
 * embedding (GPT-2) take, so a packed example computes what it would alone.
 */
public final class Documents implements AutoCloseable {
    final Tensor starts;    // (B,T) int32
    final Tensor positions; // (B*T) int32, a position's index within its document
    final Rope rope;        // (B*T, D/2) RoPE tables at those positions; null for GPT-2

    private Documents(Tensor starts, Tensor positions, Rope rope) {
        this.starts = starts;
        this.positions = positions;
        this.rope = rope;
    }

    /** starts (B*T): for each position of each row, the position its document begins at (0 <= start <= position). */
    public static Documents of(Backend backend, ModelConfig cfg, DType dtype, int[] starts, int b, int t) {
        if (starts.length != b * t) throw new IllegalArgumentException(starts.length + " document starts for a (" + b + "," + t + ") batch");
        int[] positions = new int[b * t];
        for (int i = 0; i < positions.length; i++) {
            if (starts[i] < 0 || starts[i] > i % t) throw new IllegalArgumentException("position " + i % t + " of row " + i / t + " starts its document at " + starts[i]);
            positions[i] = i % t - starts[i];
        }
        Rope rope = cfg.family() == ModelConfig.Family.GPT2 ? null : Rope.at(backend, dtype, positions, cfg.headDim(), cfg.ropeTheta());
        return new Documents(backend.fromInts(starts, b, t), backend.fromInts(positions, b * t), rope);
    }

    @Override public void close() {
        starts.close();
        positions.close();
        if (rope != null) rope.close();
    }
}
