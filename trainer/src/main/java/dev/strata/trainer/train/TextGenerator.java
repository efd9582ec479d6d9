package dev.strata.trainer.train;

import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import dev.strata.trainer.model.KvCache;
import dev.strata.trainer.model.Transformer;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.function.IntConsumer;

/**
 * Samples text from a model with a KV cache: the prompt is run once (prefill), then each new token costs one
 * position. When the cache is full (max_seq_len), the last half of the tokens is run again as a new prefill, so
 * generation goes on past the context window with half a window of context at worst.
 */
public final class TextGenerator {

    /**
     * temperature 0: greedy; topK 0: off; topP 1: off; repetitionPenalty 1: off, above 1 makes tokens already in the
     * context less likely (CTRL's penalty, as transformers' repetition_penalty: positive logits divided by it,
     * negative ones multiplied).
     */
    public record Sampling(double temperature, int topK, double topP, double repetitionPenalty, long seed) {
        public Sampling(double temperature, int topK, double topP, long seed) { this(temperature, topK, topP, 1.0, seed); }

        public Sampling {
            if (!(repetitionPenalty >= 1) || !Double.isFinite(repetitionPenalty))
                throw new IllegalArgumentException("repetition penalty must be 1 (off) or more, got " + repetitionPenalty);
            if (!(temperature >= 0) || !Double.isFinite(temperature)) throw new IllegalArgumentException("temperature must be 0 (greedy) or positive, got " + temperature);
            if (topK < 0) throw new IllegalArgumentException("top-k must be 0 (off) or positive, got " + topK);
            if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("top-p must lie in (0, 1], got " + topP);
        }
    }

    private TextGenerator() {}

    /** count tokens after the prompt; each is also handed to {@code onToken} as it is drawn. */
    public static int[] generate(Transformer model, int[] prompt, int count, Sampling sampling, IntConsumer onToken) {
        if (prompt.length == 0) throw new IllegalArgumentException("the prompt is empty: give at least one token");
        int vocab = model.config().vocabSize();
        for (int id : prompt)
            if (id < 0 || id >= vocab) throw new IllegalArgumentException("prompt token " + id + " is outside the model's vocabulary of " + vocab);
        Backend backend = model.backend();
        int window = model.config().maxSeqLen();
        int[] tokens = Arrays.copyOf(prompt, prompt.length + count);
        SplittableRandom rng = new SplittableRandom(sampling.seed());
        try (KvCache cache = model.kvCache(1, window)) {
            int n = prompt.length, from = Math.max(0, n - window);
            double[] logits = run(model, cache, Arrays.copyOfRange(tokens, from, n));
            for (; n < tokens.length; n++) {
                penalize(logits, tokens, Math.max(0, n - window), n, sampling.repetitionPenalty());
                tokens[n] = sample(logits, sampling, rng);
                onToken.accept(tokens[n]);
                if (n + 1 == tokens.length) break;
                if (cache.length() == window) { // full: keep the last half as context
                    cache.clear();
                    logits = run(model, cache, Arrays.copyOfRange(tokens, n + 1 - window / 2, n + 1));
                } else {
                    logits = run(model, cache, new int[] {tokens[n]});
                }
            }
        }
        return Arrays.copyOfRange(tokens, prompt.length, tokens.length);
    }

    /** The last position's logits over the real vocabulary after feeding ids through the cache. */
    private static double[] run(Transformer model, KvCache cache, int[] ids) {
        Backend backend = model.backend();
        int t = ids.length, vp = model.config().paddedVocabSize();
        try (Tensor x = backend.fromInts(ids, 1, t); Tensor logits = model.forwardCached(x, 1, t, cache)) {
            double[] all = backend.toDoubles(logits);
            return Arrays.copyOfRange(all, (t - 1) * vp, (t - 1) * vp + model.config().vocabSize());
        }
    }

    /** The repetition penalty over the tokens of the context, tokens[from, to), each token once. */
    static void penalize(double[] logits, int[] tokens, int from, int to, double penalty) {
        if (penalty == 1) return;
        java.util.BitSet seen = new java.util.BitSet(logits.length);
        for (int i = from; i < to; i++) {
            int id = tokens[i];
            if (id >= logits.length || seen.get(id)) continue;
            seen.set(id);
            logits[id] = logits[id] > 0 ? logits[id] / penalty : logits[id] * penalty;
        }
    }

    static int sample(double[] logits, Sampling s, SplittableRandom rng) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        if (s.temperature() == 0) return best;
        double cutoff = Double.NEGATIVE_INFINITY;
        if (s.topK() > 0 && s.topK() < logits.length) {
            double[] sorted = logits.clone();
            Arrays.sort(sorted);
            cutoff = sorted[sorted.length - s.topK()];
        }
        double max = logits[best], sum = 0;
        double[] p = new double[logits.length];
        for (int i = 0; i < p.length; i++) sum += p[i] = logits[i] < cutoff ? 0 : Math.exp((logits[i] - max) / s.temperature());
        if (s.topP() < 1) { // keep the most likely tokens until they hold top-p of the mass
            Integer[] order = new Integer[p.length];
            for (int i = 0; i < p.length; i++) order[i] = i;
            Arrays.sort(order, (a, b) -> Double.compare(p[b], p[a]));
            double total = sum, kept = 0;
            sum = 0;
            for (int i : order) {
                if (kept >= s.topP() * total) {
                    p[i] = 0;
                } else {
                    kept += p[i];
                    sum += p[i];
                }
            }
        }
        double r = rng.nextDouble() * sum;
        for (int i = 0; i < p.length; i++) if ((r -= p[i]) <= 0 && p[i] > 0) return i;
        return best;
    }
}
