package dev.strata.trainer.model;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cuda.CudaBackend;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** On the GPU too, a KV cache's logits are the whole sequence's, position for position. */
@Tag("gpu")
class CudaKvCacheTest {
    @ParameterizedTest
    @CsvSource({"GPT2, f32", "LLAMA, f32", "GPT2, bf16", "LLAMA, bf16"})
    void cachedLogitsEqualTheFullForward(ModelConfig.Family family, String dtype) {
        String unavailable = CudaBackend.unavailableReason();
        assumeTrue(unavailable == null, "no GPU here, CUDA test skipped: " + unavailable);
        DType dt = DType.parse(dtype);
        boolean gpt2 = family == ModelConfig.Family.GPT2;
        ModelConfig cfg = new ModelConfig(family, 300, 128, 2, 2, gpt2 ? 2 : 1, 64, 256, 64, 1e-5, 10000.0, gpt2, gpt2, gpt2);
        try (CudaBackend gpu = CudaBackend.open(0)) {
            Transformer model = new Transformer(cfg, gpu, dt);
            Initializer.initialize(model, 9);
            int t = 24, vp = cfg.paddedVocabSize();
            int[] ids = new int[t];
            for (int i = 0; i < t; i++) ids[i] = (i * 53 + 7) % cfg.vocabSize();
            double[] full;
            try (Tensor x = gpu.fromInts(ids, 1, t); Tensor logits = model.forward(x, 1, t)) {
                model.discardSaved();
                full = gpu.toDoubles(logits);
            }
            double diff = 0, ref = 0;
            try (KvCache cache = new KvCache(gpu, model.precision().activations(), cfg, 1, cfg.maxSeqLen())) {
                for (int at = 0; at < t; ) {
                    int n = at == 0 ? 10 : 1;
                    try (Tensor x = gpu.fromInts(java.util.Arrays.copyOfRange(ids, at, at + n), 1, n); Tensor logits = model.forwardCached(x, 1, n, cache)) {
                        double[] got = gpu.toDoubles(logits);
                        for (int i = 0; i < n * vp; i++) {
                            double e = full[at * vp + i];
                            diff += (got[i] - e) * (got[i] - e);
                            ref += e * e;
                        }
                    }
                    at += n;
                }
            }
            double rel = Math.sqrt(diff / ref);
            System.out.printf("cuda kv cache %s %s: relative logit difference %.2e%n", family, dtype, rel);
            assertTrue(rel < (dt == DType.BF16 ? 2e-2 : 1e-5), "cached logits match the full forward: " + rel);
        }
    }
}
