package dev.strata.trainer.finetune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.strata.runtime.DType;
import dev.strata.runtime.cuda.CudaBackend;
import dev.strata.trainer.model.Initializer;
import dev.strata.trainer.model.ModelConfig;
import dev.strata.trainer.model.Transformer;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The document masks of the CUDA attention kernels: examples packed into rows of 256 (boundaries inside and across
 * the kernels' 64-key tiles) give the loss and gradients they give one a row, on the tensor-core kernels (bf16,
 * head_dim 64) and the reference ones (f32).
 */
@Tag("gpu")
class CudaPackingTest {
    static final String UNAVAILABLE = CudaBackend.unavailableReason();

    @ParameterizedTest
    @ValueSource(strings = {"bf16", "f32"})
    void packedRowsOnTheGpuComputeWhatSeparateRowsDo(String dtype) {
        assumeTrue(UNAVAILABLE == null, "no GPU here, packed attention on CUDA skipped: " + UNAVAILABLE);
        try (CudaBackend gpu = CudaBackend.open(0)) {
            var cfg = new ModelConfig(ModelConfig.Family.LLAMA, 64, 128, 2, 2, 1, 64, 256, 256, 1e-5, 10000, false, false, false);
            Transformer model = new Transformer(cfg, gpu, DType.parse(dtype));
            Initializer.initialize(model, 5);
            int t = 256;
            List<TokenizedExample> xs = PackingTest.examples(24, 64, 17, 18, 120);
            PackedExamples packed = new PackedExamples(xs, t, 0);
            var alone = PackingTest.pass(model, new ExampleWindows(xs, t, 0), t);
            var together = PackingTest.pass(model, packed, t);
            double tol = dtype.equals("bf16") ? 3e-3 : 1e-5;
            double lossAlone = alone.loss() / alone.trained(), lossPacked = together.loss() / together.trained();
            assertEquals(lossAlone, lossPacked, tol * lossAlone, dtype + ": loss per trained token");
            double num = 0, den = 0;
            for (String name : alone.grads().keySet()) {
                double[] a = alone.grads().get(name), p = together.grads().get(name);
                for (int i = 0; i < a.length; i++) {
                    num += (a[i] - p[i]) * (a[i] - p[i]);
                    den += a[i] * a[i];
                }
            }
            double rel = Math.sqrt(num / den);
            assertTrue(rel < (dtype.equals("bf16") ? 2e-2 : 1e-5), dtype + ": gradients of packed rows differ by " + rel + " (relative norm)");
            System.out.printf("cuda packing %s: %d examples in %d rows of %d (%.0f%% filled), loss %.6f alone, %.6f packed, gradient difference %.2e%n",
                    dtype, xs.size(), packed.windows(), t, 100 * packed.fill(), lossAlone, lossPacked, rel);
        }
    }
}
