package dev.strata.trainer.data;

/**
 * Training rows of T inputs and T targets, numbered 0 to windows() - 1: a pretraining split's token windows, or
 * fine-tuning examples one a row (targets -1 where nothing trains). The sampler, evaluation and checkpoints see
 * only this, so both kinds of data train, shuffle, split over replicas and resume alike.
 */
public interface Windows {
    long windows();

    int seqLen();

    /** Writes window w's inputs and targets into row r of (B,T) arrays. */
    void window(long w, int[] inputs, int[] targets, int row);

    /** Refuses, naming where, a token at or above the model's vocabulary size. */
    void checkVocabulary(int vocabSize);

    /** Whether rows hold several documents (packed examples), whose {@link #starts} attention must respect. */
    default boolean packed() { return false; }

    /** Writes, for each position of window w, where its document begins, into row r of a (B,T) array. */
    default void starts(long w, int[] starts, int row) { java.util.Arrays.fill(starts, row * seqLen(), (row + 1) * seqLen(), 0); }
}
