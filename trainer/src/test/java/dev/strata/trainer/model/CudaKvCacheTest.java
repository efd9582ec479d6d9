package dev.strata.trainer.model;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.runtime.DType;
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
        // head size 64: bf16 prefill runs on the tensor-core attention, decode on the cached kernel
        ModelConfig cfg = new ModelConfig(family, 300, 128, 2, 2, gpt2 ? 2 : 1, 64, 256, 64, 1e-5, 10000.0, gpt2, gpt2, gpt2);
        try (CudaBackend gpu = CudaBackend.open(0)) {
            Transformer model = new Transformer(cfg, gpu, dt);
            Initializer.initialize(model, 9);
            double rel = KvCacheTest.cachedAgainstFull(model, 24, 10);
            System.out.printf("cuda kv cache %s %s: relative logit difference %.2e%n", family, dtype, rel);
            assertTrue(rel < (dt == DType.BF16 ? 2e-2 : 1e-5), "cached logits match the full forward: " + rel);
        }
    }
}
