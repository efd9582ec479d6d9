package dev.strata.trainer.model;

import java.util.List;

/**
 * Which part of the model a {@link Transformer} holds: its chunks of blocks in model order, the embedding (before the
 * first chunk), the head (after the last).
 */
public record Stage(List<Layers> chunks, boolean embedding, boolean head) {
    /** Blocks [first, end) of the model. */
    public record Layers(int first, int end) {
        @Override public String toString() { return "[" + first + ", " + end + ")"; }
    }

    public Stage {
        chunks = List.copyOf(chunks);
        if (chunks.isEmpty()) throw new IllegalArgumentException("a stage holds at least one chunk of layers");
    }

    /** Blocks [firstLayer, endLayer) in one chunk. */
    public Stage(int firstLayer, int endLayer, boolean embedding, boolean head) {
        this(List.of(new Layers(firstLayer, endLayer)), embedding, head);
    }

    public static Stage whole(ModelConfig cfg) { return new Stage(0, cfg.nLayers(), true, true); }

    public int layerCount() { return chunks.stream().mapToInt(c -> c.end() - c.first()).sum(); }

    /** Whether the stage holds the whole model. */
    public boolean whole(int nLayers) { return embedding && head && chunks.size() == 1 && chunks.get(0).equals(new Layers(0, nLayers)); }
}
