package dev.strata.trainer.cli;

import dev.strata.trainer.data.TokenDataset;
import dev.strata.trainer.model.Transformer;
import dev.strata.trainer.train.Evaluation;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "eval", mixinStandardHelpOptions = true, description = "Loss and perplexity of a model on a prepared split.")
final class EvalCommand implements Callable<Integer> {
    @Mixin ModelSource source;

    @Option(names = "--data", required = true, description = "A directory written by `strata data prepare`.")
    Path data;

    @Option(names = "--split", defaultValue = "val", description = "train or val (default ${DEFAULT-VALUE}).")
    String split;

    @Option(names = "--batches", defaultValue = "0", description = "Batches to evaluate, 0 for the whole split (default ${DEFAULT-VALUE}).")
    int batches;

    @Option(names = "--batch-size", defaultValue = "8", description = "Sequences a batch (default ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--seq-len", description = "Tokens a sequence (default: the checkpoint's training.seq_len, else max_seq_len up to 1024).")
    Integer seqLen;

    @Override public Integer call() throws Exception {
        if (!split.equals("val") && !split.equals("train")) throw new IllegalArgumentException("--split must be train or val, got " + split);
        if (batches < 0) throw new IllegalArgumentException("--batches must be 0 (all) or more, got " + batches);
        if (batchSize < 1) throw new IllegalArgumentException("--batch-size must be 1 or more, got " + batchSize);
        ModelSource.Loaded loaded = source.load();
        Transformer model = loaded.model();
        int t = seqLen != null ? seqLen : loaded.seqLen() > 0 ? loaded.seqLen() : Math.min(model.config().maxSeqLen(), 1024);
        if (t < 1 || t > model.config().maxSeqLen())
            throw new IllegalArgumentException("--seq-len must lie in [1, " + model.config().maxSeqLen() + "] (the model's max_seq_len), got " + t);
        TokenDataset set = new TokenDataset(data, split, t);
        set.checkVocabulary(model.config().vocabSize());
        long available = set.windows() / batchSize, n = batches == 0 ? available : Math.min(batches, available);
        if (n == 0)
            throw new IllegalArgumentException("the " + split + " split in " + data + " has " + set.windows() + " windows of " + (t + 1)
                    + " tokens, fewer than one batch of " + batchSize);
        long t0 = System.nanoTime();
        double loss = Evaluation.loss(model, set, batchSize, t, (int) n);
        System.out.printf(Locale.ROOT, "%s on %s/%s: loss %.4f, perplexity %.2f over %,d tokens (%d batches of %d x %d, %.1f s)%n",
                loaded.name(), data, split, loss, Math.exp(loss), n * batchSize * t, n, batchSize, t, (System.nanoTime() - t0) / 1e9);
        return 0;
    }
}
