package dev.strata.trainer.model;

import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;

/**
 * Examples packed into a batch's rows: where each position's document begins in its row, so attention stays
 * inside it, and each position's index within its document, which RoPE's angles (Llama) or the learned position
 * embedding (GPT-2) take, so a packed example computes what it would alone.
 */
public final class Documents implements AutoCloseable {
    final Tensor starts;    // (B,T) int32
    final Tensor positions; // (B*T) int32, a position's index within its document
    final Rope rope;        // (B*T, D/2) the model's RoPE rows at those positions; null for GPT-2

    private Documents(Tensor starts, Tensor positions, Rope rope) {
        this.starts = starts;
        this.positions = positions;
        this.rope = rope;
    }

    /**
     * The documents of a (b,t) batch for this model. starts (B*T): for each position of each row, the position its
     * document begins at (0 <= start <= position). RoPE's rows are gathered on the device from the model's own
     * tables, so a packed example rotates by exactly the values it would alone.
     */
    public static Documents of(Transformer model, int[] starts, int b, int t) {
        if (starts.length != b * t) throw new IllegalArgumentException(starts.length + " document starts for a (" + b + "," + t + ") batch");
        int[] within = new int[b * t];
        for (int i = 0; i < within.length; i++) {
            if (starts[i] < 0 || starts[i] > i % t) throw new IllegalArgumentException("position " + i % t + " of row " + i / t + " starts its document at " + starts[i]);
            within[i] = i % t - starts[i];
        }
        Backend backend = model.backend();
        Tensor positions = backend.fromInts(within, b * t);
        Rope tables = model.rope();
        Rope rope = tables == null ? null : new Rope(backend.embeddingForward(positions, tables.cos(), tables.cos().dtype(), 0),
                backend.embeddingForward(positions, tables.sin(), tables.sin().dtype(), 0));
        return new Documents(backend.fromInts(starts, b, t), positions, rope);
    }

    @Override public void close() {
        starts.close();
        positions.close();
        if (rope != null) rope.close();
    }
}
