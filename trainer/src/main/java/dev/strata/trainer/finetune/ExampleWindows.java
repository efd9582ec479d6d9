package dev.strata.trainer.finetune;

import dev.strata.trainer.data.Windows;
import java.util.List;

/**
 * Fitted examples as training rows, one example a row: its tokens, then padding whose targets are -1 (see
 * {@link FinetuneBatches#batch}). Rows past the examples (to round an evaluation set up to whole batches) are all
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
        List<TokenizedExample> rows = w < examples.size() ? List.of(examples.get((int) w)) : List.of();
        FinetuneBatches.Batch one = FinetuneBatches.batch(rows, 1, seqLen, padId);
        System.arraycopy(one.inputs(), 0, inputs, row * seqLen, seqLen);
        System.arraycopy(one.targets(), 0, targets, row * seqLen, seqLen);
    }

    @Override public void checkVocabulary(int vocabSize) {
        for (TokenizedExample x : examples)
            for (int id : x.ids())
                if (id >= vocabSize)
                    throw new IllegalArgumentException("line " + x.line() + ": token " + id + " lies outside the model's vocab_size " + vocabSize
                            + "; the tokenizer.json is not this model's");
    }

    /** The tokens that train over all examples. */
    public long trainedTokens() { return examples.stream().mapToLong(TokenizedExample::trainedCount).sum(); }

    public int examples() { return examples.size(); }
}
