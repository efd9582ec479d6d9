package dev.strata.trainer.train;

import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import dev.strata.trainer.model.Transformer;
import java.util.Arrays;
import java.util.SplittableRandom;

/** Samples text from a model: temperature and top-k, a window of the last max_seq_len tokens as context. */
public final class TextGenerator {
    private TextGenerator() {}

    public static int[] generate(Transformer model, int[] prompt, int count, double temperature, int topK, int context, long seed) {
        Backend backend = model.backend();
        int v = model.config().vocabSize(), vp = model.config().paddedVocabSize();
        int[] tokens = Arrays.copyOf(prompt, prompt.length + count);
        SplittableRandom rng = new SplittableRandom(seed);
        for (int n = prompt.length; n < tokens.length; n++) {
            int t = Math.min(n, context), from = n - t;
            double[] logits;
            try (Tensor ids = backend.fromInts(Arrays.copyOfRange(tokens, from, n), 1, t);
                 Tensor out = model.forward(ids, 1, t)) {
                model.discardSaved();
                double[] all = backend.toDoubles(out);
                logits = Arrays.copyOfRange(all, (t - 1) * vp, (t - 1) * vp + v); // the last position's real tokens
            }
            tokens[n] = sample(logits, temperature, topK, rng);
        }
        return Arrays.copyOfRange(tokens, prompt.length, tokens.length);
    }

    static int sample(double[] logits, double temperature, int topK, SplittableRandom rng) {
        double cutoff = Double.NEGATIVE_INFINITY;
        if (topK > 0 && topK < logits.length) {
            double[] sorted = logits.clone();
            Arrays.sort(sorted);
            cutoff = sorted[sorted.length - topK];
        }
        double max = Arrays.stream(logits).max().orElse(0), sum = 0;
        double[] p = new double[logits.length];
        for (int i = 0; i < p.length; i++) sum += p[i] = logits[i] < cutoff ? 0 : Math.exp((logits[i] - max) / temperature);
        double r = rng.nextDouble() * sum;
        for (int i = 0; i < p.length; i++) if ((r -= p[i]) <= 0 && p[i] > 0) return i;
        return p.length - 1;
    }
}
