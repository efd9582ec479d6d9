package dev.strata.trainer.finetune;

import dev.strata.trainer.data.Windows;
import java.util.List;

/**
 * Fitted examples as training rows, one example a row: its tokens, then padding whose targets are -1, which
 * causal attention keeps from every real position. Rows past the examples (to round an evaluation set up to whole batches) are all
 * padding and count for nothing.
 */
public final class ExampleWindows implements Windows {
    private final List<TokenizedExample> examples;
    private final int seqLen, padId;
    private final long windows;

    /** windows: at least examples.size(); the rest are empty rows. */
    public ExampleWindows(List<TokenizedExample> examples, int seqLen, int padId, long windows) {
        if (windows < examples.size()) throw new IllegalArgumentException(windows + " rows cannot hold " + examples.size() + " examples");
        this.examples = examples;
        this.seqLen = seqLen;
        this.padId = padId;
        this.windows = windows;
    }

    public ExampleWindows(List<TokenizedExample> examples, int seqLen, int padId) { this(examples, seqLen, padId, examples.size()); }

    @Override public long windows() { return windows; }

    @Override public int seqLen() { return seqLen; }

    @Override public void window(long w, int[] inputs, int[] targets, int row) {
        int at = row * seqLen, end = at + seqLen;
        if (w < examples.size()) {
            TokenizedExample x = examples.get((int) w);
            x.writeInto(inputs, targets, at);
            at += x.positions();
        }
        java.util.Arrays.fill(inputs, at, end, padId);
        java.util.Arrays.fill(targets, at, end, -1);
    }

    @Override public void checkVocabulary(int vocabSize) { TokenizedExample.checkVocabulary(examples, vocabSize); }

    /** The tokens that train over all examples. */
    public long trainedTokens() { return examples.stream().mapToLong(TokenizedExample::trainedCount).sum(); }

    public int examples() { return examples.size(); }
}
