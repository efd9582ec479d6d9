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

    @ParameterizedTest
    @EnumSource(ModelConfig.Family.class)
    void cachedLogitsEqualTheFullForward(ModelConfig.Family family) {
        Backend cpu = CpuBackend.INSTANCE;
        ModelConfig cfg = config(family);
        Transformer model = new Transformer(cfg, cpu, DType.F64);
        Initializer.initialize(model, 7);
        int t = 12, vp = cfg.paddedVocabSize();
        int[] ids = new int[t];
        for (int i = 0; i < t; i++) ids[i] = (i * 37 + 5) % cfg.vocabSize();
        double[] full;
        try (Tensor x = cpu.fromInts(ids, 1, t); Tensor logits = model.forward(x, 1, t)) {
            model.discardSaved();
            full = cpu.toDoubles(logits);
        }
        double worst = 0;
        try (KvCache cache = new KvCache(cpu, DType.F64, cfg, 1, cfg.maxSeqLen())) {
            int prefill = 5;
            for (int at = 0; at < t; ) {
                int n = at == 0 ? prefill : 1;
                int[] part = java.util.Arrays.copyOfRange(ids, at, at + n);
                try (Tensor x = cpu.fromInts(part, 1, n); Tensor logits = model.forwardCached(x, 1, n, cache)) {
                    double[] got = cpu.toDoubles(logits);
                    for (int i = 0; i < n * vp; i++) worst = Math.max(worst, Math.abs(got[i] - full[at * vp + i]));
                }
                at += n;
            }
            assertEquals(t, cache.length());
        }
        System.out.printf("kv cache %s: worst logit difference %.2e%n", family, worst);
        assertTrue(worst < 1e-12, "cached logits match: " + worst);
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
