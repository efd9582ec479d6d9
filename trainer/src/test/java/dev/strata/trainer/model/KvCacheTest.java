package dev.strata.trainer.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.trainer.train.TextGenerator;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Generation with a KV cache computes what the whole sequence's forward does, position for position, in F64. */
class KvCacheTest {
    static ModelConfig config(ModelConfig.Family family) {
        boolean gpt2 = family == ModelConfig.Family.GPT2;
        return new ModelConfig(family, 70, 32, 2, 4, gpt2 ? 4 : 2, 8, 64, 16, 1e-5, 10000.0, gpt2, gpt2, gpt2);
    }

    /**
     * The relative difference between the logits of t tokens run through the whole model at once and run through a
     * KV cache: a prefill of {@code prefill} tokens, then one at a time.
     */
    static double cachedAgainstFull(Transformer model, int t, int prefill) {
        Backend backend = model.backend();
        ModelConfig cfg = model.config();
        int vp = cfg.paddedVocabSize();
        int[] ids = new int[t];
        for (int i = 0; i < t; i++) ids[i] = (i * 37 + 5) % cfg.vocabSize();
        double[] full;
        try (Tensor x = backend.fromInts(ids, 1, t); Tensor logits = model.forward(x, 1, t)) {
            model.discardSaved();
            full = backend.toDoubles(logits);
        }
        double diff = 0, ref = 0;
        try (KvCache cache = new KvCache(backend, model.precision().activations(), cfg, 1, cfg.maxSeqLen())) {
            for (int at = 0; at < t; ) {
                int n = at == 0 ? prefill : 1;
                try (Tensor x = backend.fromInts(java.util.Arrays.copyOfRange(ids, at, at + n), 1, n);
                     Tensor logits = model.forwardCached(x, 1, n, cache)) {
                    double[] got = backend.toDoubles(logits);
                    for (int i = 0; i < n * vp; i++) {
                        double e = full[at * vp + i];
                        diff += (got[i] - e) * (got[i] - e);
                        ref += e * e;
                    }
                }
                at += n;
            }
            assertEquals(t, cache.length());
        }
        return Math.sqrt(diff / ref);
    }

    @ParameterizedTest
    @EnumSource(ModelConfig.Family.class)
    void cachedLogitsEqualTheFullForward(ModelConfig.Family family) {
        Transformer model = new Transformer(config(family), CpuBackend.INSTANCE, DType.F64);
        Initializer.initialize(model, 7);
        double rel = cachedAgainstFull(model, 12, 5);
        System.out.printf("kv cache %s: relative logit difference %.2e%n", family, rel);
        assertTrue(rel < 1e-13, "cached logits match: " + rel);
    }

    @ParameterizedTest
    @EnumSource(ModelConfig.Family.class)
    void generationGoesOnPastTheContextWindowAndIsRepeatable(ModelConfig.Family family) {
        ModelConfig cfg = config(family);
        Transformer model = new Transformer(cfg, CpuBackend.INSTANCE, DType.F32);
        Initializer.initialize(model, 3);
        var sampling = new TextGenerator.Sampling(0.9, 20, 0.9, 11);
        int[] a = TextGenerator.generate(model, new int[] {1, 2, 3}, 3 * cfg.maxSeqLen(), sampling, id -> {});
        int[] b = TextGenerator.generate(model, new int[] {1, 2, 3}, 3 * cfg.maxSeqLen(), sampling, id -> {});
        assertEquals(3 * cfg.maxSeqLen(), a.length);
        assertTrue(java.util.Arrays.equals(a, b), "same seed, same text");
        for (int id : a) assertTrue(id >= 0 && id < cfg.vocabSize(), "real tokens only: " + id);
        int[] greedy = TextGenerator.generate(model, new int[] {1, 2, 3}, 5, new TextGenerator.Sampling(0, 0, 1, 1), id -> {});
        int[] greedyAgain = TextGenerator.generate(model, new int[] {1, 2, 3}, 5, new TextGenerator.Sampling(0, 0, 1, 99), id -> {});
        assertTrue(java.util.Arrays.equals(greedy, greedyAgain), "greedy ignores the seed");
    }
}
