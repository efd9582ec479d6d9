package dev.strata.trainer.finetune;

import java.util.ArrayList;
import java.util.List;

/**
 * Examples as rows of a (B,T) batch, one example a row (no packing): inputs are its tokens, targets the next token
 * where that token trains and -1 elsewhere (the prompt, padding), which the loss skips; padding goes after the
 * example, where causal attention keeps it from every real position.
 */
public final class FinetuneBatches {
    private FinetuneBatches() {}

    /** What fitting examples to a length did: the examples kept (cut to it where truncating) and how many were cut or dropped. */
    public record Fitted(List<TokenizedExample> examples, int truncated, int dropped) {
        public String describe(int seqLen) {
            if (truncated == 0 && dropped == 0) return "every example fits " + seqLen + " tokens";
            return truncated > 0 ? truncated + " examples longer than " + seqLen + " tokens cut to it"
                    : dropped + " examples longer than " + seqLen + " tokens left out";
        }
    }

    /** A row predicts at most seqLen tokens from seqLen + 1; longer examples are cut (truncate) or left out. */
    public static Fitted fit(List<TokenizedExample> examples, int seqLen, boolean truncate) {
        List<TokenizedExample> kept = new ArrayList<>();
        int truncated = 0, dropped = 0;
        for (TokenizedExample x : examples) {
            if (x.ids().length <= seqLen + 1) {
                kept.add(x);
            } else if (truncate) {
                kept.add(new TokenizedExample(x.line(), java.util.Arrays.copyOf(x.ids(), seqLen + 1), java.util.Arrays.copyOf(x.trained(), seqLen + 1)));
                truncated++;
            } else {
                dropped++;
            }
        }
        kept.removeIf(x -> x.trainedCount() == 0 || x.ids().length < 2 || !trainsAfterFirst(x)); // nothing left to learn from
        return new Fitted(List.copyOf(kept), truncated, dropped);
    }

    private static boolean trainsAfterFirst(TokenizedExample x) {
        for (int i = 1; i < x.trained().length; i++) if (x.trained()[i]) return true;
        return false;
    }

    /** inputs, targets: (B,T) token ids; trainedTokens: the targets that are not -1. */
    public record Batch(int[] inputs, int[] targets, int trainedTokens) {}

    /** rows (at most b) as a (b,t) batch; rows it lacks, and the ends of short ones, are padId with no target. */
    public static Batch batch(List<TokenizedExample> rows, int b, int t, int padId) {
        if (rows.size() > b) throw new IllegalArgumentException(rows.size() + " examples do not fit a batch of " + b + " rows");
        int[] inputs = new int[b * t], targets = new int[b * t];
        java.util.Arrays.fill(inputs, padId);
        java.util.Arrays.fill(targets, -1);
        int trained = 0;
        for (int r = 0; r < rows.size(); r++) {
            TokenizedExample x = rows.get(r);
            if (x.positions() > t) throw new IllegalArgumentException("line " + x.line() + ": " + x.ids().length + " tokens do not fit a row of " + t);
            trained += x.writeInto(inputs, targets, r * t);
        }
        return new Batch(inputs, targets, trained);
    }
}
