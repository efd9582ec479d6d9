package dev.strata.trainer.data;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * The shards of one split ("train" or "val") of a prepared directory, cut into windows of T+1 tokens that never
 * cross a shard boundary: window k of a shard covers tokens [k*T, k*T + T], its inputs the first T, its targets the
 * last T.
 */
public final class TokenDataset implements Windows {
    private final List<TokenShard> shards = new ArrayList<>();
    private final long[] firstWindow; // prefix sums of windows per shard
    private final int seqLen;

    public TokenDataset(Path dir, String split, int seqLen) throws IOException {
        this.seqLen = seqLen;
        if (!Files.isDirectory(dir))
            throw new IllegalArgumentException("data directory " + dir + " does not exist; run `strata data prepare` first");
        List<Path> files;
        try (Stream<Path> s = Files.list(dir)) {
            files = s.filter(p -> p.getFileName().toString().matches(split + "-\\d{5}\\.bin")).sorted().toList();
        }
        if (files.isEmpty()) throw new IllegalArgumentException("data directory " + dir + " has no " + split + "-NNNNN.bin shards");
        firstWindow = new long[files.size() + 1];
        for (int i = 0; i < files.size(); i++) {
            TokenShard shard = TokenShard.open(files.get(i));
            shards.add(shard);
            firstWindow[i + 1] = firstWindow[i] + Math.max(0, (shard.count() - 1) / seqLen);
        }
        if (windows() == 0)
            throw new IllegalArgumentException("the " + split + " split in " + dir + " has fewer than seq_len + 1 = "
                    + (seqLen + 1) + " tokens in every shard");
    }

    @Override public long windows() { return firstWindow[shards.size()]; }

    @Override public int seqLen() { return seqLen; }

    @Override public void window(long w, int[] inputs, int[] targets, int row) {
        int s = 0;
        while (firstWindow[s + 1] <= w) s++;
        long start = (w - firstWindow[s]) * seqLen;
        TokenShard shard = shards.get(s);
        shard.read(start, inputs, row * seqLen, seqLen);
        shard.read(start + 1, targets, row * seqLen, seqLen);
    }

    /** Every token must be below the vocabulary size (a shard from another tokenizer would not be). */
    @Override public void checkVocabulary(int vocabSize) {
        for (TokenShard shard : shards) {
            long n = shard.count();
            for (long i = 0; i < n; i++)
                if (shard.get(i) >= vocabSize)
                    throw new IllegalArgumentException("token shard " + shard.path() + " holds token " + shard.get(i)
                            + " at " + i + ", outside the model's vocab_size " + vocabSize);
        }
    }
}
